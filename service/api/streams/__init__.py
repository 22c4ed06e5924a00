"""`WS /v1/models/{name}/stream`: the audio and sensor stream protocols (one module each, with
its messages), and what they share: errors and close codes, the connection, stream slots."""

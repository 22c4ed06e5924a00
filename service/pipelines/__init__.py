"""One pipeline per input type, below the API: audio clip, audio stream, sensor series and
sensor stream each go from input to verdicts here, timing their stages; routes and WebSocket
handlers only translate. Blocking: the API runs them in the scoring pool."""

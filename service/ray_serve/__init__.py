"""Auscult on Ray Serve (the `ray` extra): the same app as `auscult serve`, run by Ray Serve
replicas behind Ray's HTTP proxy. Nothing here is imported by the service itself, so the service
runs without Ray installed."""

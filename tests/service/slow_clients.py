"""Raw-socket clients that stall: they open a connection and stop part-way through a request."""

from __future__ import annotations

import socket

SCORE = "/v1/models/fan/score"


def stalled_head(host: str, port: int) -> socket.socket:
    """A client that sends part of a request head and then nothing."""
    client = socket.create_connection((host, port))
    client.sendall(f"POST {SCORE} HTTP/1.1\r\nHost: test\r\n".encode())
    return client


def stalled_upload(host: str, port: int) -> socket.socket:
    """A client that sends a whole head and a tenth of the body it declared, then nothing."""
    client = socket.create_connection((host, port))
    client.sendall(
        f"POST {SCORE} HTTP/1.1\r\nHost: test\r\nContent-Type: audio/wav\r\n"
        "Content-Length: 10000\r\n\r\n".encode()
        + b"\0" * 1000
    )
    return client


def read_until_closed(client: socket.socket, timeout_s: float) -> bytes:
    """Everything the server sends until it closes the connection; raises TimeoutError when it
    keeps the connection open past `timeout_s` (a generous bound, not a measurement)."""
    client.settimeout(timeout_s)
    received = b""
    try:
        while chunk := client.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    finally:
        client.close()
    return received

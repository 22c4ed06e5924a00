"""A listening socket of its own for each worker of `auscult serve`, all on one port through
SO_REUSEPORT: the kernel then spreads new connections over the workers by their addresses.
uvicorn's supervisor shares one socket among its workers instead, and whichever worker woke
first took a whole burst of keep-alive clients (16 `hey` clients all on one worker of two:
half the goodput for the length of the run), however accepts were paced."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

Address = tuple[Any, ...]


def worker_socket(family: int, address: Address) -> socket.socket:
    """A new socket on `address` beside the other workers' (in a worker process), bound but not
    yet listening: uvicorn listens on it once the worker's app has started, so no connection
    is queued on a worker that is still starting."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


class PortReservation(socket.socket):
    """The port, bound but not listening (so it is handed no connections), held by the
    supervisor for as long as it runs: a port in use fails before any worker starts, port 0
    becomes one port for all, and no other program's socket can take it meanwhile. Passed to
    a worker process (pickled by multiprocessing), it arrives as that worker's own socket on
    the same address (`worker_socket`), which uvicorn then listens on."""

    def __init__(self, host: str, port: int) -> None:
        # As uvicorn's own binding does: a host with a colon is IPv6.
        super().__init__(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            self.bind((host, port))
        except OSError:
            self.close()
            raise

    def __reduce_ex__(
        self, protocol: Any
    ) -> tuple[Callable[[int, Address], socket.socket], tuple[int, Address]]:
        return worker_socket, (int(self.family), self.getsockname())

"""Per-worker listening sockets: the reservation a worker receives becomes a socket of its own
on the same port, with its own queue of connections; the supervisor's reservation is handed
none; a port in use is refused before any worker starts."""

from __future__ import annotations

import pickle
import socket
from multiprocessing.reduction import ForkingPickler

import pytest

from service.listen_sockets import PortReservation


def _as_a_worker_gets_it(reservation: PortReservation) -> socket.socket:
    """What a spawned worker process unpickles from the supervisor's reservation, once its
    server has started (uvicorn then listens on it)."""
    received = pickle.loads(ForkingPickler.dumps(reservation))
    assert isinstance(received, socket.socket)
    # Bound, not listening, until the worker's server starts: nothing queues on it before.
    assert received.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0
    received.listen(128)
    return received


def _accept_all(listener: socket.socket) -> list[socket.socket]:
    listener.setblocking(False)
    accepted = []
    while True:
        try:
            accepted.append(listener.accept()[0])
        except BlockingIOError:
            return accepted


def test_each_worker_gets_its_own_queue_of_connections_on_the_one_port() -> None:
    with PortReservation("127.0.0.1", 0) as reservation:
        port = reservation.getsockname()[1]
        workers = [_as_a_worker_gets_it(reservation) for _ in range(2)]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        taken: list[list[socket.socket]] = []
        try:
            assert all(w.getsockname() == ("127.0.0.1", port) for w in workers)
            # Drained one after the other: had the workers shared one socket, the first would
            # take all 64. The kernel spreads connections by their addresses, so each worker
            # holds about half (fewer than 8 of 64 has odds below one in a million).
            taken = [_accept_all(w) for w in workers]
            assert sum(len(t) for t in taken) == 64
            assert all(len(t) >= 8 for t in taken), [len(t) for t in taken]
            # The reservation only holds the port: not listening, so nothing queues on it.
            assert reservation.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0
            assert all(w.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1 for w in workers)
        finally:
            for connection in [*clients, *(c for t in taken for c in t), *workers]:
                connection.close()


def test_a_port_in_use_is_refused_at_once() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(OSError, match="Address already in use"):
            PortReservation("127.0.0.1", other.getsockname()[1])

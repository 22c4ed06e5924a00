"""Keep-alive connections spread evenly over the workers of one server.

The kernel hands each new connection to one worker's socket by a hash of its addresses
(SO_REUSEPORT, service/listen_sockets.py), so a handful of stations that keep their connections
can land 3 to 1 or 4 to 0 on two workers: one worker then scores everything and queues while
the other idles. Each worker publishes how many HTTP connections it holds in the folder the
workers share; a worker holding more than its share answers as many requests as it holds
connections too many with `Connection: close`, and those clients' next connections are hashed
afresh (about half land back). It then waits until every other worker has published again, so
that it never acts twice on the same view of the others."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from pathlib import Path

from service.metrics import Metrics
from service.run_folders import alive, worker_file, write_atomically

logger = logging.getLogger(__name__)

CONNECTIONS_DIR = "connections"
# A count not rewritten for this many polls is not counted: its worker is stuck, or it is an
# earlier server's file under a process id that a live process has taken since (a given
# worker folder keeps them). Counted, it would never be fresh and stop the balancing.
STALE_AFTER_POLLS = 8


class ConnectionBalance:
    """One worker's side: its open HTTP connections, counted by its protocol
    (service/http_protocol.py), against the counts the other workers published. Without a
    folder (one app in a process of its own, Ray Serve replicas behind Ray's proxy) it never
    asks for a close."""

    def __init__(self, folder: Path | None, *, poll_seconds: float, metrics: Metrics) -> None:
        self._poll_seconds = poll_seconds
        self._metrics = metrics
        self._file = worker_file(folder, CONNECTIONS_DIR) if folder is not None else None
        self.open = 0  # this worker's HTTP connections; changed on the event loop only
        self._others: list[int] = []  # the other live workers' counts at the last exchange
        self._closable = 0  # closes left until the next exchange
        self._last_close = 0.0  # wall-clock time of the last one

    def opened(self) -> None:
        self.open += 1

    def closed(self) -> None:
        self.open -= 1

    @property
    def share(self) -> int:
        """The most connections this worker should hold: all of them over the workers,
        rounded up."""
        return math.ceil((self.open + sum(self._others)) / (1 + len(self._others)))

    def should_close(self) -> bool:
        """Whether the request being answered should close its connection: True for as many
        answers as this worker held connections above its share at the last exchange."""
        if self._closable <= 0 or self.open <= self.share:
            return False
        self._closable -= 1
        self._last_close = time.time()
        self._metrics.connections_rebalanced.inc()
        return True

    async def run(self) -> None:
        """Publish this worker's count and read the others' every poll, until cancelled."""
        if self._file is None:
            return
        while True:
            try:
                # In a thread, as WorkerSync's poll: file calls on the event loop wait for a
                # busy scoring thread to hand the GIL back.
                others, fresh = await asyncio.to_thread(
                    self._exchange,
                    self._file,
                    self.open,
                    self._last_close,
                    time.time() - STALE_AFTER_POLLS * self._poll_seconds,
                )
                self._others = others
                # Until the others' counts show where the last closed connections went, a
                # worker could close the ones that came back and more.
                self._closable = self.open - self.share if fresh else 0
            except OSError:  # a failed round must never stop the following ones
                logger.exception("exchanging connection counts in %s failed", self._file.parent)
            await asyncio.sleep(self._poll_seconds)

    @staticmethod
    def _exchange(
        own: Path, count: int, since: float, stale_before: float
    ) -> tuple[list[int], bool]:
        """Publish `count`; the counts of the other live workers that published after
        `stale_before`, and whether every one of them published after `since` (wall clock)."""
        own.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(own, str(count))
        others, fresh = [], True
        for path in own.parent.iterdir():
            if path == own or path.name.startswith("."):
                continue
            try:
                pid = int(path.name.split("-")[0])
                published = int(path.read_text(encoding="ascii"))
                written = path.stat().st_mtime
            except (OSError, ValueError):
                continue  # removed meanwhile, or not a count
            if written < stale_before:
                continue
            if alive(pid):
                others.append(published)
                fresh = fresh and written > since
            else:
                path.unlink(missing_ok=True)
        return others, fresh

    def close(self) -> None:
        """Leave: the other workers stop counting this one."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.unlink()

"""A bounded thread pool for decoding, features and inference: full means refuse, never queue
without bound."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class PoolFullError(RuntimeError):
    """Every worker thread is busy and the wait queue is full; try again shortly."""


class BoundedPool:
    """`threads` workers and at most `queue_limit` jobs waiting for one; more are refused."""

    def __init__(self, threads: int, queue_limit: int, *, name: str = "auscult-score") -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if queue_limit < 0:
            raise ValueError(f"queue_limit must not be negative, got {queue_limit}")
        self.capacity = threads + queue_limit
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Jobs running or waiting."""
        return self._in_flight

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run fn in a worker thread, or raise PoolFullError at once when the pool is full."""
        with self._lock:
            if self._in_flight >= self.capacity:
                raise PoolFullError(f"all {self.capacity} scoring slots are busy; retry shortly")
            self._in_flight += 1
        try:
            future = self._executor.submit(functools.partial(fn, *args, **kwargs))
        except RuntimeError:
            self._release()
            raise
        # The slot is freed when the job ends, not when its caller stops waiting: a cancelled
        # request's job still occupies a thread until it finishes.
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _: object = None) -> None:
        with self._lock:
            self._in_flight -= 1

    def shutdown(self) -> None:
        """Finish the jobs already accepted, then stop the threads."""
        self._executor.shutdown(wait=True)

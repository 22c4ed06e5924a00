"""A bounded thread pool for decoding, features and inference: full means refuse, never queue
without bound. It times its jobs, so that callers can tell how long new work would wait."""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from service.thread_priority import lowered_threads

P = ParamSpec("P")
T = TypeVar("T")

# Weight of the newest job in the moving average of service time: about the last 10 jobs
# count, so the estimate follows a change of clip length or machine load within a burst.
SERVICE_TIME_WEIGHT = 0.1


class PoolFullError(RuntimeError):
    """Every worker thread is busy and the wait queue is full; try again shortly."""


class BoundedPool:
    """`threads` workers and at most `queue_limit` jobs waiting for one; more are refused. The
    workers run `nice` below the priority of the thread that starts them (thread_priority.py)."""

    def __init__(
        self,
        threads: int,
        queue_limit: int,
        *,
        name: str = "auscult-score",
        nice: int = 0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if queue_limit < 0:
            raise ValueError(f"queue_limit must not be negative, got {queue_limit}")
        self.threads = threads
        self.capacity = threads + queue_limit
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=name, initializer=lowered_threads(nice)
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = 0
        self._service_seconds = 0.0  # 0 until a job has finished: nothing is known yet

    @property
    def in_flight(self) -> int:
        """Jobs running or waiting."""
        return self._in_flight

    @property
    def service_seconds(self) -> float:
        """Moving average of the time one job holds a thread (0 before the first one ends)."""
        return self._service_seconds

    def expected_wait(self, ahead: int = 0) -> float:
        """Seconds a job submitted now would wait for a thread, with `ahead` more jobs on
        their way to the pool (requests still reading their bodies) in line before it."""
        queued = self._in_flight + ahead + 1 - self.threads
        return self._service_seconds * max(queued, 0) / self.threads

    def retry_after(self, ahead: int = 0) -> int:
        """Whole seconds until the current backlog (`ahead` jobs included) is done, at least 1:
        what a refused client is told to wait."""
        backlog = self._service_seconds * (self._in_flight + ahead) / self.threads
        return max(1, math.ceil(backlog))

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run fn in a worker thread, or raise PoolFullError at once when the pool is full."""
        with self._lock:
            if self._in_flight >= self.capacity:
                raise PoolFullError(f"all {self.capacity} scoring slots are busy; retry shortly")
            self._in_flight += 1
        try:
            future = self._executor.submit(self._timed, functools.partial(fn, *args, **kwargs))
        except RuntimeError:
            self._release()
            raise
        # The slot is freed when the job ends, not when its caller stops waiting: a cancelled
        # request's job still occupies a thread until it finishes.
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _timed(self, job: Callable[[], T]) -> T:
        """In the worker thread: run the job and fold its duration into the average."""
        started = self._clock()
        try:
            return job()
        finally:
            self._observe(self._clock() - started)

    def _observe(self, seconds: float) -> None:
        with self._lock:
            if self._service_seconds == 0.0:
                self._service_seconds = seconds
            else:
                self._service_seconds += SERVICE_TIME_WEIGHT * (seconds - self._service_seconds)

    def _release(self, _: object = None) -> None:
        with self._lock:
            self._in_flight -= 1

    def shutdown(self) -> None:
        """Finish the jobs already accepted, then stop the threads."""
        self._executor.shutdown(wait=True)

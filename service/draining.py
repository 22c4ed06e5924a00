"""Graceful draining: on SIGTERM or SIGINT, report not-ready at once but keep serving for a
grace period, so a load balancer stops sending traffic before the server stops."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

logger = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)

Handler = Callable[[int, FrameType | None], object] | int | None


class DrainOnSignal:
    """Wraps the signal handlers already installed (uvicorn's): the first signal sets `draining`
    and reaches the wrapped handler `seconds` later; a second one reaches it at once."""

    def __init__(self, draining: threading.Event, seconds: float) -> None:
        self._draining = draining
        self._seconds = seconds
        self._previous: dict[int, Handler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def install(self) -> bool:
        """Take over the signals; False (and nothing done) off the main thread, where signals
        cannot be handled, or when there is no grace period."""
        if self._seconds <= 0 or threading.current_thread() is not threading.main_thread():
            return False
        self._loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return True

    def uninstall(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        if self._draining.is_set() or self._loop is None:
            self._forward(sig, frame)
            return
        self._draining.set()
        logger.info("signal %d: draining for %.1f s before shutting down", sig, self._seconds)
        # A signal handler may run in the middle of the event loop's own code: schedule safely.
        self._loop.call_soon_threadsafe(self._schedule, sig)

    def _schedule(self, sig: int) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(self._seconds, self._forward, sig, None)

    def _forward(self, sig: int, frame: FrameType | None) -> None:
        previous = self._previous.get(sig)
        if previous is None:
            return  # uninstalled meanwhile: the server is already stopping
        if callable(previous):
            previous(sig, frame)
        else:
            signal.signal(sig, previous)
            signal.raise_signal(sig)

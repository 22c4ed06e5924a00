"""Work threads below the event loop: the threads that decode, score and write evidence run at a
lower CPU priority (a higher nice value) than the thread that runs the event loop. Under a
scoring overload every core is busy scoring; the loop, which needs only moments of CPU, then
gets one at once to refuse a request, answer a health check or a metrics scrape, and keep the
streams' frames moving, instead of queueing behind the scoring threads for the CPU. Linux sets
niceness per thread; elsewhere this does nothing."""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

# The least favourable nice value there is.
LOWEST_PRIORITY = 19


def lower_current_thread(increment: int) -> None:
    """Raise the calling thread's nice value by `increment` (at most to 19); nothing where
    threads have no niceness of their own, or when the system refuses, which is logged."""
    if increment <= 0 or sys.platform != "linux":
        return
    # On Linux, PRIO_PROCESS with a thread id sets that one thread's niceness.
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(LOWEST_PRIORITY, current + increment))
    except OSError as exc:
        name = threading.current_thread().name
        logger.warning("thread %s keeps the event loop's CPU priority: %s", name, exc)


def lowered_threads(increment: int) -> Callable[[], None]:
    """A ThreadPoolExecutor initializer: each of its threads lowers itself by `increment`."""
    return functools.partial(lower_current_thread, increment)

"""Thread niceness for the tests of service/thread_priority.py and of the threads it lowers:
Linux only, where each thread has a nice value of its own."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from service.thread_priority import LOWEST_PRIORITY

linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="threads have a niceness of their own only on Linux"
)


def priority_of(thread: threading.Thread | None = None) -> int:
    """The nice value of `thread` (a started one), or of the calling thread (so, given to a
    worker thread as its job, the nice value that thread runs at)."""
    native_id = threading.get_native_id() if thread is None else thread.native_id
    assert native_id is not None, "the thread has not started"
    return os.getpriority(os.PRIO_PROCESS, native_id)


def lowered(base: int, increment: int) -> int:
    """The nice value a thread at `base` has once lowered by `increment`."""
    return min(LOWEST_PRIORITY, base + increment)

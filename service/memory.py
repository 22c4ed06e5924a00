"""glibc's malloc set up so that memory a request frees goes back to the system.

By default glibc serves a large allocation (a decoded clip, a resampled signal, a batch of
blocks) with mmap and unmaps it when freed, but each such free raises the mmap threshold to the
block's size, up to 32 MB: from then on arrays of that size come from the heap, and a heap only
shrinks from its top, which any small allocation made later pins. A fuzz run of 600 clips left
the server 198 MB above its starting RSS that way; with the thresholds fixed (what
MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ do, but those must be set before the process
starts, which a worker that uvicorn or a container spawns does not control) it was 46 MB.

The threshold must stay above the arrays every clip allocates and frees again, or each of them
is mapped, faulted in page by page and unmapped on every use: at 1 MB, the log-mel's chunks of
frames and spectra (1 to 2.6 MB for a 10 s clip at 16 kHz) cost 2,900 page faults per clip and
made scoring 2.2x slower than in a plain process (10.8 against 4.9 ms a clip). So arrays up to
8 MB come from the heap, and what they leave there is handed back by `malloc_trim` every few
seconds (`trim_periodically`): it returns the free pages inside the heap too, not only its top,
in about 2 ms, and the next clip faults in only what it uses again. Every thread allocates from
the one main heap (M_ARENA_MAX 1): glibc otherwise gives threads heaps of their own, whose free
tops malloc_trim leaves alone (a fuzz run of 4,800 cases ended 54 MB above its start with
them, 44 MB without; numpy and ONNX Runtime allocate in bulk, so the shared lock costs little).

Hand-written over ctypes because no maintained library exposes mallopt."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import platform
import sys

logger = logging.getLogger(__name__)

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Blocks from this size on are mapped on their own and unmapped when freed; a heap's free top
# beyond it is returned. 8 MB: the scratch arrays of scoring a clip of up to about 20 s stay on
# the heap and are reused, and only bulk arrays (long clips, large batches) are mapped.
BULK_BYTES = 8 * 1024 * 1024


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def return_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds at BULK_BYTES and its heaps at one for this
    process; True when applied (False off glibc, where the allocator is left as it is).
    Idempotent."""
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = all(
        mallopt(option, value) == 1
        for option, value in (
            (_M_MMAP_THRESHOLD, BULK_BYTES),
            (_M_TRIM_THRESHOLD, BULK_BYTES),
            (_M_ARENA_MAX, 1),
        )
    )
    if not applied:
        logger.warning("glibc refused mallopt: freed memory may stay with the process")
    return applied


def trim_freed_memory() -> bool:
    """Hand the free pages of every heap of this process back to the system (glibc's
    `malloc_trim(0)`); True when some were. False off glibc."""
    libc = _glibc()
    return libc is not None and libc.malloc_trim(0) == 1


async def trim_periodically(interval_s: float) -> None:
    """Trim every `interval_s` seconds until cancelled, in a thread: a trim walks every heap."""
    if _glibc() is None:
        return
    while True:
        await asyncio.sleep(interval_s)
        await asyncio.to_thread(trim_freed_memory)

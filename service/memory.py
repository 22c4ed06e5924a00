"""glibc's malloc set up so that memory a request frees goes back to the system.

By default glibc serves a large allocation (a decoded clip, a resampled signal, a batch of
blocks) with mmap and unmaps it when freed, but each such free raises the mmap threshold to the
block's size, up to 32 MB: from then on arrays of that size come from the heap, and a heap only
shrinks from its top, which any small allocation made later pins. A fuzz run of 600 clips left
the server 198 MB above its starting RSS that way; with the thresholds fixed at 1 MB (what
MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ do, but those must be set before the process
starts, which a worker that uvicorn or a container spawns does not control) it was 46 MB.

Hand-written over ctypes because no maintained library exposes mallopt."""

from __future__ import annotations

import ctypes
import logging
import platform
import sys

logger = logging.getLogger(__name__)

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks from this size on are mapped on their own and unmapped when freed; a heap's free top
# beyond it is returned. 1 MB: a second of 16 kHz float32 audio is 64 KB, so only bulk arrays
# (whole clips, block batches) are mapped, and the small, frequent ones stay on the heap.
BULK_BYTES = 1024 * 1024


def return_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds at BULK_BYTES for this process; True when applied
    (False off glibc, where the allocator is left as it is). Idempotent."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = all(
        mallopt(option, BULK_BYTES) == 1 for option in (_M_MMAP_THRESHOLD, _M_TRIM_THRESHOLD)
    )
    if not applied:
        logger.warning("glibc refused mallopt: freed memory may stay with the process")
    return applied

"""return_freed_memory: arrays a request frees go back to the system instead of staying in
glibc's heap, in a process that sets it up itself and in every app's worker. Each case runs
in a fresh interpreter, whose allocator has not been set up by another test."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator"
)

REPO = Path(__file__).resolve().parents[2]
# What the service does to glibc's heap, in small: a large array is mapped and freed (which
# by default raises glibc's mmap threshold to its size), then 100 MB of 4 MB arrays, each
# followed by a long-lived 64 KB one (too large for the holes earlier allocations left in the
# heap, so it lands above the array), are allocated and freed. Prints the MB still resident.
_SCENARIO = textwrap.dedent(
    """
    import numpy as np

    def resident_mb():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096 / 2**20

    large = np.ones(16 * 2**20 // 8)
    del large
    before = resident_mb()
    arrays, small = [], []
    for _ in range(25):
        arrays.append(np.ones(4 * 2**20 // 8))
        small.append(np.ones(8192))
    del arrays
    print(resident_mb() - before)
    """
)


def _retained_mb(setup: str) -> float:
    # Without the MALLOC_* variables that would set the thresholds from outside.
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(setup) + _SCENARIO],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def test_freed_arrays_go_back_to_the_system() -> None:
    assert _retained_mb("") > 50  # glibc's default, which this guards against
    setup = """
    from service.memory import return_freed_memory
    assert return_freed_memory()
    """
    assert _retained_mb(setup) < 10


def test_every_app_sets_it_up_when_it_starts(tmp_path: Path) -> None:
    setup = f"""
    import asyncio
    from pathlib import Path
    from service.app import create_app
    from service.config import Settings

    app = create_app(Settings(models_dir=Path({str(tmp_path)!r}), reload_poll_seconds=0))

    async def start_and_stop():
        async with app.router.lifespan_context(app):
            pass

    asyncio.run(start_and_stop())
    """
    assert _retained_mb(setup) < 10

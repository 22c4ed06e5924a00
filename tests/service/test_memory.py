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
# by default raises glibc's mmap threshold to its size, 24 MB), then 160 MB of 16 MB arrays,
# bulk for the service, each followed by a long-lived 64 KB one (too large for the holes
# earlier allocations left in the heap, so it lands above the array), are allocated and freed.
# Prints the MB still resident.
_SCENARIO = textwrap.dedent(
    """
    import numpy as np

    def resident_mb():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096 / 2**20

    large = np.ones(24 * 2**20 // 8)
    del large
    before = resident_mb()
    arrays, small = [], []
    for _ in range(10):
        arrays.append(np.ones(16 * 2**20 // 8))
        small.append(np.ones(8192))
    del arrays
    print(resident_mb() - before)
    """
)
# Arrays under the mapping threshold, which stay on the heap, pinned there as above; then what
# `trimmed()` does (set up before). Prints the MB still resident.
_HEAP_SCENARIO = textwrap.dedent(
    """
    import numpy as np

    def resident_mb():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096 / 2**20

    before = resident_mb()
    arrays, small = [], []
    for _ in range(20):
        arrays.append(np.ones(4 * 2**20 // 8))
        small.append(np.ones(8192))
    del arrays
    trimmed()
    print(resident_mb() - before)
    """
)
# Scoring's scratch arrays, in small: the log-mel of a 10 s clip at 16 kHz with the paper's
# settings, 20 times over. Prints the page faults per clip after the first.
_LOG_MEL = textwrap.dedent(
    """
    import resource
    import numpy as np
    from service.bundle.manifest import LogMelSettings
    from service.features.logmel import LogMelExtractor

    extractor = LogMelExtractor(LogMelSettings(sample_rate=16000))
    clip = np.random.default_rng(0).standard_normal(160000).astype(np.float32) * 0.1
    extractor.clip_blocks(clip)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        extractor.clip_blocks(clip)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
    """
)


def _run(setup: str, scenario: str = _SCENARIO) -> float:
    """What the scenario prints, run after `setup` in a fresh interpreter."""
    # Without the MALLOC_* variables that would set the thresholds from outside.
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(setup) + scenario],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def test_freed_arrays_go_back_to_the_system() -> None:
    assert _run("") > 50  # glibc's default, which this guards against
    setup = """
    from service.memory import return_freed_memory
    assert return_freed_memory()
    """
    assert _run(setup) < 10


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
    assert _run(setup) < 10


def test_scoring_a_clip_maps_no_fresh_memory() -> None:
    # Mapped and unmapped on every clip, the log-mel's scratch arrays would be faulted in page
    # by page each time: 2,900 faults per 10 s clip, scoring 2.2x slower.
    setup = """
    from service.memory import return_freed_memory
    assert return_freed_memory()
    """
    assert _run(setup, _LOG_MEL) < 50


_SETUP = """
from service.memory import return_freed_memory, trim_freed_memory
assert return_freed_memory()
"""


def test_a_trim_hands_back_what_the_heap_kept() -> None:
    assert _run(_SETUP + "def trimmed(): pass\n", _HEAP_SCENARIO) > 50
    assert _run(_SETUP + "def trimmed(): assert trim_freed_memory()\n", _HEAP_SCENARIO) < 10


def test_every_app_trims_while_it_runs(tmp_path: Path) -> None:
    # The scenario runs inside the app's lifespan; trimmed() gives its trim task time to run.
    setup = f"""
    import asyncio
    import threading
    import time
    from pathlib import Path
    from service.app import create_app
    from service.config import Settings

    app = create_app(
        Settings(models_dir=Path({str(tmp_path)!r}), reload_poll_seconds=0, memory_trim_seconds=0.1)
    )
    started, finished = threading.Event(), threading.Event()

    async def serve():
        async with app.router.lifespan_context(app):
            started.set()
            while not finished.is_set():
                await asyncio.sleep(0.05)

    server = threading.Thread(target=lambda: asyncio.run(serve()))
    server.start()
    started.wait(60)

    def trimmed():
        time.sleep(0.5)

    """
    retained = _run(setup, _HEAP_SCENARIO + "finished.set()\nserver.join(60)\n")
    assert retained < 10

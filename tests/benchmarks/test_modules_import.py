"""Every benchmark module still imports. Benchmarks run by hand and rarely, so a name they take
from the code they measure can be renamed under them unnoticed until someone needs the figures
again (capacity_response imported a `_clip` that had become `_alarm_clip`)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.parametrize("name", sorted(path.stem for path in BENCHMARKS.glob("*.py")))
def test_benchmark_module_imports(name: str) -> None:
    importlib.import_module(f"benchmarks.{name}")

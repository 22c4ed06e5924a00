"""Where the real data sets live for tests: AUSCULT_DATA_DIR, default ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("AUSCULT_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


def real_data(relative: str) -> Path:
    """The path of a real data set under DATA_DIR, or skip the calling test saying why."""
    path = DATA_DIR / relative
    if not path.exists():
        pytest.skip(f"real data {relative!r} not found under {DATA_DIR} (set AUSCULT_DATA_DIR)")
    return path

"""Test-wide settings: keep torch and ONNX Runtime to one thread so tests share 2 cores fairly."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

"""Test-wide settings: keep torch and ONNX Runtime to one thread so tests share 2 cores fairly."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Apps built from default settings keep their event database and evidence in a throwaway
# folder, never in the working tree; tests of the event store set their own.
if "AUSCULT_STATE_DIR" not in os.environ:
    _state_dir = tempfile.mkdtemp(prefix="auscult-test-state-")
    os.environ["AUSCULT_STATE_DIR"] = _state_dir
    atexit.register(shutil.rmtree, _state_dir, True)

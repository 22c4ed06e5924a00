"""Time `auscult train windows` with the distilled student, its default until issue 9 (teacher,
then student; thresholds; ONNX export; evaluation through ONNX Runtime) on MSL, all 27 channels
joined, with 2 torch threads. Writes benchmarks/results/windows_msl_default.json."""

from __future__ import annotations

import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.windows_grid import DATA_DIR, RESULTS
from service.bundle.manifest import WindowsManifest, read_manifest
from training.cli import main as training_main

OUT = RESULTS / "windows_msl_default.json"
THREADS = 2


def main() -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        bundle = Path(folder) / "msl"
        argv = ["train", "windows", "--data", str(DATA_DIR / "timeseries" / "MSL")]
        argv += ["--format", "msl", "--out", str(bundle), "--threads", str(THREADS), "--no-report"]
        argv += ["--model", "distilled_student", "--score-pooling", "step"]
        started = time.perf_counter()
        cpu_started = resource.getrusage(resource.RUSAGE_SELF)
        if training_main(argv) != 0:
            raise SystemExit("training failed")
        wall = time.perf_counter() - started
        cpu_ended = resource.getrusage(resource.RUSAGE_SELF)
        manifest = read_manifest(bundle)
    assert isinstance(manifest, WindowsManifest)
    result = {
        "command": "auscult " + " ".join([*argv[:2], "--data", "MSL", "--format", "msl"]),
        "wall_seconds": wall,
        "cpu_seconds": (cpu_ended.ru_utime - cpu_started.ru_utime)
        + (cpu_ended.ru_stime - cpu_started.ru_stime),
        "threads": THREADS,
        "train_seconds": manifest.model_settings["train_seconds"],
        "epochs_run": manifest.model_settings["epochs_run"],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "evaluation": manifest.evaluation.model_dump() if manifest.evaluation else None,
        "threshold": manifest.step_decision.threshold,
    }
    RESULTS.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Time the done-when commands themselves: `auscult train audio` on the UAV recordings (10 s clips,
5 labelled anomalous recordings), then `auscult evaluate audio --json` on the recordings the
bundle never saw. Writes benchmarks/results/audio_cli.json."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.audio_protocol import DATA_DIR, write_results

AUSCULT = Path(sys.executable).with_name("auscult")


def _timed(command: list[str]) -> dict[str, Any]:
    """Run one command; its wall time, the CPU seconds it used, and the load around it."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return {
        "command": " ".join(command),
        "wall_seconds": wall,
        "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "stdout": done.stdout,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA_DIR / "audio" / "uav_propeller")
    parser.add_argument("--out", default="audio_cli", help="results file name (no suffix)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="auscult-cli-"))
    bundle = work / "uav"
    try:
        data = str(args.data)
        train = _timed(
            [
                *(str(AUSCULT), "train", "audio", "--data", data, "--clip-seconds", "10"),
                # The done-when command itself: its report is timed apart from training.
                *("--labeled-anomalies", "5", "--out", str(bundle), "--quiet", "--no-report"),
            ]
        )
        evaluate = _timed(
            [str(AUSCULT), "evaluate", "audio", "--bundle", str(bundle), "--data", data, "--json"]
        )
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    evaluate["figures"] = json.loads(evaluate["stdout"].strip().splitlines()[-1])
    path = write_results(
        args.out,
        {
            "cpu_cores": os.cpu_count(),
            "train": train,
            "evaluate": evaluate,
            "clip_decision": manifest["clip_decision"],
            "training": manifest["training"],
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Time the done-when commands themselves: `auscult train audio` on the UAV recordings (10 s clips,
5 labelled anomalous recordings), then `auscult evaluate audio --json` on the recordings the
bundle never saw. Writes benchmarks/results/audio_cli.json."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from benchmarks.audio_protocol import DATA_DIR, write_results
from benchmarks.processes import AUSCULT, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA_DIR / "audio" / "uav_propeller")
    parser.add_argument("--out", default="audio_cli", help="results file name (no suffix)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="auscult-cli-"))
    bundle = work / "uav"
    try:
        data = str(args.data)
        train = timed(
            [
                *(str(AUSCULT), "train", "audio", "--data", data, "--clip-seconds", "10"),
                # The done-when command itself: its report is timed apart from training.
                *("--labeled-anomalies", "5", "--out", str(bundle), "--quiet", "--no-report"),
            ]
        )
        evaluate = timed(
            [str(AUSCULT), "evaluate", "audio", "--bundle", str(bundle), "--data", data, "--json"]
        )
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = write_results(
        args.out,
        {
            "cpu_cores": os.cpu_count(),
            "train": {**train.figures(), "stdout": train.stdout},
            "evaluate": {
                **evaluate.figures(),
                "stdout": evaluate.stdout,
                "figures": json.loads(evaluate.stdout.strip().splitlines()[-1]),
            },
            "clip_decision": manifest["clip_decision"],
            "training": manifest["training"],
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

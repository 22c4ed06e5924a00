"""Predicted against measured false alarms: `auscult train audio` with its default flags on every
machine type of dcase2020_dev and on mimii_fan_id00, and on the UAV recordings with 10 s clips and
5 labelled anomalous recordings, 4 seeds each. Every run records, for each operating point, the
false-alarm rate per clip the bundle predicts (with its interval) and the rate measured on the
held-out normal test recordings (the pipeline's own test evaluation, through the exported bundle).
Writes benchmarks/results/audio_false_alarms.json whole."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from benchmarks.audio_protocol import DATA_DIR, SEEDS, write_results
from benchmarks.processes import AUSCULT, timed

DCASE_TYPES = ("fan", "pump", "slider", "valve", "ToyCar", "ToyConveyor")
# name -> the flags beside --data, --out, --seed; everything else at the CLI's defaults.
SETS: dict[str, list[str]] = {
    **{
        f"dcase_{t}": ["--data", str(DATA_DIR / "audio" / "dcase2020_dev"), "--machine-type", t]
        for t in DCASE_TYPES
    },
    "mimii_fan_id00": ["--data", str(DATA_DIR / "audio" / "mimii_fan_id00")],
    "uav_propeller": [
        *("--data", str(DATA_DIR / "audio" / "uav_propeller")),
        *("--clip-seconds", "10", "--labeled-anomalies", "5"),
    ],
}


def _run(name: str, flags: list[str], seed: int, work: Path) -> dict[str, Any]:
    bundle = work / f"{name}-{seed}"
    command = [
        *(str(AUSCULT), "train", "audio", *flags, "--seed", str(seed)),
        *("--out", str(bundle), "--quiet", "--overwrite", "--no-report"),
    ]
    run = timed(command)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    evaluation = manifest["evaluation"]
    points = {}
    for point in manifest["operating_points"]:
        name_ = point["name"]
        points[name_] = {
            "rule": point["rule"],
            "target": point["target"],
            "thresholds": point["thresholds"],
            "fit": point["fit"],
            "predicted": point["predicted"],
            "measured_false_alarm_rate": evaluation["extra"].get(f"false_alarm_rate[{name_}]"),
            "measured_recall": evaluation["extra"].get(f"recall[{name_}]"),
        }
    shutil.rmtree(bundle, ignore_errors=True)
    return {
        "set": name,
        "seed": seed,
        **run.figures(),
        "default_operating_point": manifest["default_operating_point"],
        "training": manifest["training"],
        "test": {
            "data": evaluation["data"],
            "normal_clips": evaluation["n_normal"],
            "anomalous_clips": evaluation["n_anomaly"],
            "auc": evaluation["auc"],
            "pauc": evaluation["pauc"],
        },
        "points": points,
        "warnings": [
            line.removeprefix("warning: ")
            for line in run.stdout.splitlines()
            if line.startswith("warning: ")
        ],
        "stdout": run.stdout,
    }


def _document(rows: list[dict[str, Any]], load: float, started: float, complete: bool) -> Any:
    order = list(SETS)
    return {
        "cpu_cores": os.cpu_count(),
        "torch_threads": 1,
        "load_start": load,
        "load_end": os.getloadavg()[0],
        "wall_seconds": time.perf_counter() - started,
        "complete": complete,
        "rows": sorted(rows, key=lambda row: (order.index(row["set"]), row["seed"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument(
        "--jobs", type=int, default=3, help="training commands run at once (1 thread each)"
    )
    parser.add_argument("--out", default="audio_false_alarms", help="results file name")
    args = parser.parse_args()
    load, started = os.getloadavg()[0], time.perf_counter()
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="auscult-false-alarms-"))
    # The long UAV runs first, so the short ones fill in beside them.
    runs = sorted(
        ((name, seed) for name in args.sets for seed in args.seeds),
        key=lambda run: run[0] != "uav_propeller",
    )
    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(_run, name, SETS[name], seed, work) for name, seed in runs]
            for future in as_completed(futures):
                row = future.result()
                rows.append(row)
                print(
                    row["set"],
                    row["seed"],
                    f"{row['wall_seconds']:.0f} s",
                    {
                        p: (v["predicted"]["clip"]["rate"], v["measured_false_alarm_rate"])
                        for p, v in row["points"].items()
                    },
                    flush=True,
                )
                # Rewritten after every run, so a long run leaves its finished rows behind.
                write_results(args.out, _document(rows, load, started, complete=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = write_results(args.out, _document(rows, load, started, complete=True))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Operating points of the default sensor bundle, measured as an operator sees them: on MSL and on
the first three SMD machines present, train the distilled student with per-step scores
(`auscult train windows`'s default until issue 9; windows_baselines.py covers every model),
fit every threshold on the held-out training blocks (Gamma at r = 0.99, the 99th percentile,
and a budget of one alarm event per 1,440 steps), write the bundle and evaluate it
through ONNX Runtime on the test parts: false alarms (alarm events touching no labelled step) per
1,440 normal steps against the rate each threshold predicted, the share of labelled segments
alarmed, and the steps to the first alarm.

    python -m benchmarks.windows_operating_points            # all runs, written whole
    python -m benchmarks.windows_operating_points --report   # the markdown tables

Raw results: benchmarks/results/windows_operating_points.jsonl (one line per series and seed);
tables: benchmarks/results/windows_operating_points.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.windows_grid import DATA_DIR, RESULTS
from training.windows.bundle import training_history, write_bundle
from training.windows.bundle_evaluation import PREFIXES, evaluate_bundle_in_full
from training.windows.config import WindowsConfig
from training.windows.evaluation import fit_thresholds
from training.windows.loaders import load_data
from training.windows.loaders.smd import smd_machines
from training.windows.pipeline import prepare, train_models, validation_part_scores

RAW = RESULTS / "windows_operating_points.jsonl"
TABLES = RESULTS / "windows_operating_points.md"
SEEDS = (0, 1, 2)
SMD_MACHINES = 3
POINTS = ("gamma", "percentile", "false_alarm_rate")
FIGURES = (
    "threshold",
    "false_alarms",
    "false_alarms_per_1440_steps",
    "false_alarms_per_hour",
    "normal_flagged_share",
    "segments_alarmed",
    "first_alarm_steps_median",
    "first_alarm_steps_mean",
    "precision",
    "recall",
    "f1",
    "flagged_share",
)


def _series() -> list[tuple[str, str, str | None]]:
    """MSL, then the first SMD_MACHINES machines present (in the benchmark's numbering), so the
    choice does not depend on their results."""
    machines = smd_machines(DATA_DIR / "timeseries" / "SMD")[:SMD_MACHINES]
    return [("MSL", "msl", None), *((f"SMD {m}", "smd", m) for m in machines)]


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def run_one(name: str, data_format: str, subset: str | None, seed: int) -> dict[str, Any]:
    folder = "MSL" if data_format == "msl" else "SMD"
    data = load_data(data_format, DATA_DIR / "timeseries" / folder, subset)
    config = WindowsConfig(model="distilled_student", score_pooling="step")
    load_before = os.getloadavg()
    started = time.perf_counter()
    prepared = prepare(data, config)
    trained = train_models(prepared, config, [config.model], seed)[config.model]
    held_out = validation_part_scores(trained, prepared, config)
    thresholds = fit_thresholds(held_out, config, data.step_seconds)
    with tempfile.TemporaryDirectory() as bundle:
        write_bundle(
            Path(bundle),
            name="benchmark",
            version="1",
            trained=trained,
            prepared=prepared,
            data=data,
            config=config,
            thresholds=thresholds,
            seed=seed,
            data_format=data_format,
            data_subset=subset,
        )
        result = evaluate_bundle_in_full(Path(bundle), data)
    metrics = result.metrics
    points: dict[str, Any] = {}
    for point in thresholds.points:
        prefix = PREFIXES[point.rule]
        predicted = point.predicted["1440 steps"]
        points[point.name] = {
            "target": point.target,
            "predicted_per_1440_steps": predicted.rate,
            "predicted_low": predicted.low,
            "predicted_high": predicted.high,
            **{key: _finite(metrics[prefix + key]) for key in FIGURES if prefix + key in metrics},
        }
    history = training_history(trained)
    return {
        "series": name,
        "seed": seed,
        "model": config.model,
        "budget": thresholds.budget.describe(),
        "budget_unresolved": bool(thresholds.budget_fit and thresholds.budget_fit.unresolved),
        "held_out_steps": int(sum(s.size for s in held_out)),
        "held_out_blocks": len(held_out),
        "test_steps": int(metrics["n_steps"]),
        "test_normal_steps": int(metrics["n_steps"] - metrics["n_anomalous_steps"]),
        "test_segments": int(metrics["n_segments"]),
        "step_seconds": data.step_seconds,
        "auc_pr": metrics["auc_pr"],
        "vus_pr": metrics["vus_pr"],
        "points": points,
        "best_epoch": history.best_epoch,
        "epochs_run": {stage: len(epochs) for stage, epochs in history.stages.items()},
        "drift_warnings": list(result.warnings),
        "seconds": time.perf_counter() - started,
        "threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__}",
    }


def run(seeds: tuple[int, ...]) -> None:
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    lines = []
    partial = RAW.with_suffix(".partial.jsonl")
    partial.write_text("")
    for seed in seeds:
        for name, data_format, subset in _series():
            row = run_one(name, data_format, subset, seed)
            lines.append(json.dumps(row))
            with partial.open("a") as out:
                out.write(lines[-1] + "\n")
            print(
                f"{name} seed {seed}: "
                + ", ".join(
                    f"{p} {row['points'][p]['false_alarms_per_1440_steps']:.2f} FA/1440 "
                    f"(predicted {row['points'][p]['predicted_per_1440_steps']:.2f}), "
                    f"{row['points'][p]['segments_alarmed']:.2f} segments"
                    for p in POINTS
                ),
                flush=True,
            )
    RAW.write_text("\n".join(lines) + "\n")
    partial.unlink()


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def _inside(figures: dict[str, Any]) -> bool:
    low, high = figures["predicted_low"], figures["predicted_high"]
    return bool(low <= figures["false_alarms_per_1440_steps"] <= high)


def report() -> str:
    rows = [json.loads(line) for line in RAW.read_text().splitlines() if line.strip()]
    by_series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_series[row["series"]].append(row)
    out = [
        "Budget: one false alarm (alarm event touching no labelled step) per 1,440 normal steps.",
        f"Runs: {len(rows)} (series x seed); mean ± standard deviation over seeds.",
        "",
        "| series | threshold | predicted FA / 1,440 steps [95 % interval], per seed | "
        "measured FA / 1,440 normal test steps | measured inside the interval | segments "
        "alarmed | steps to first alarm (median) | point-wise P / R |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "gamma": "Gamma r = 0.99",
        "percentile": "99th percentile",
        "false_alarm_rate": "budget",
    }
    for series, runs in by_series.items():
        for point in POINTS:
            figures = [run["points"][point] for run in runs]
            predicted = "; ".join(
                f"{f['predicted_per_1440_steps']:.2f} [{f['predicted_low']:.2f}, "
                f"{f['predicted_high']:.2f}]"
                for f in figures
            )
            delays = [f["first_alarm_steps_median"] for f in figures]
            out.append(
                f"| {series} | {labels[point]} | {predicted} | "
                f"{_mean_sd([f['false_alarms_per_1440_steps'] for f in figures])} | "
                f"{sum(_inside(f) for f in figures)} of {len(figures)} | "
                f"{_mean_sd([f['segments_alarmed'] for f in figures])} | "
                f"{_mean_sd([d for d in delays if d is not None])} | "
                f"{_mean_sd([f['precision'] for f in figures])} / "
                f"{_mean_sd([f['recall'] for f in figures])} |"
            )
    out += ["", "| series | seeds | held-out steps | test normal steps | segments | best epochs |"]
    out.append("|---|---|---|---|---|---|")
    for series, runs in by_series.items():
        epochs = "; ".join(
            ", ".join(f"{stage} {epoch}" for stage, epoch in run["best_epoch"].items())
            for run in runs
        )
        out.append(
            f"| {series} | {len(runs)} | {runs[0]['held_out_steps']} | "
            f"{runs[0]['test_normal_steps']} | {runs[0]['test_segments']} | {epochs} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--report", action="store_true", help="only write the tables")
    args = parser.parse_args()
    if not args.report:
        run(tuple(args.seeds))
    TABLES.write_text(report())
    print(TABLES.read_text())


if __name__ == "__main__":
    main()

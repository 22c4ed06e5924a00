"""The sensor-series experiment grid: every windows model on MSL (all channels joined, as Anomaly
Transformer does) and on each SMD machine present, for several seeds; thresholds from held-out
training blocks only. Appends one JSON line per (series, seed, model) to
benchmarks/results/windows_grid.jsonl (runs already there are skipped, so it resumes), and
`--report` turns that file into the markdown tables of benchmarks/results/windows_grid.md.

    python -m benchmarks.windows_grid --shard 0/2 &   # two processes, one thread each
    python -m benchmarks.windows_grid --shard 1/2 &
    python -m benchmarks.windows_grid --report
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.windows.config import MODEL_KINDS, WindowsConfig
from training.windows.evaluation import fit_thresholds, metrics_at_thresholds, score_test
from training.windows.loaders import load_data
from training.windows.loaders.smd import smd_machines
from training.windows.pipeline import prepare, train_models, validation_scores

DATA_DIR = Path(
    os.environ.get("AUSCULT_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")
)
RESULTS = Path(__file__).resolve().parent / "results"
RAW = RESULTS / "windows_grid.jsonl"
TABLES = RESULTS / "windows_grid.md"
SEEDS = (0, 1, 2)
METRICS = ("f1_pa", "precision", "recall", "f1", "auc_pr", "vus_pr")
LABELS = {
    "distilled_student": "distilled student",
    "student": "student (no distillation)",
    "teacher": "teacher",
    "lstm_ae": "LSTM AE",
    "anomaly_transformer": "Anomaly Transformer",
}


def _series() -> list[tuple[str, str, str | None]]:
    """(name, format, subset) of every series in the grid, MSL first."""
    series: list[tuple[str, str, str | None]] = [("MSL", "msl", None)]
    smd = DATA_DIR / "timeseries" / "SMD"
    series += [(f"SMD {m}", "smd", m) for m in smd_machines(smd)]
    return series


def _done() -> set[tuple[str, int, str]]:
    if not RAW.exists():
        return set()
    records = [json.loads(line) for line in RAW.read_text().splitlines() if line.strip()]
    return {(r["series"], r["seed"], r["model"]) for r in records}


def run(shard: int, shards: int, seeds: tuple[int, ...]) -> None:
    config = WindowsConfig()
    done = _done()
    jobs = [(s, seed) for s in _series() for seed in seeds]
    for index, ((name, data_format, subset), seed) in enumerate(jobs):
        if index % shards != shard:
            continue
        if all((name, seed, kind) in done for kind in MODEL_KINDS):
            continue
        root = DATA_DIR / "timeseries" / ("MSL" if data_format == "msl" else "SMD")
        data = load_data(data_format, root, subset)
        prepared = prepare(data, config)
        started = time.perf_counter()
        trained = train_models(prepared, config, MODEL_KINDS, seed)
        print(f"{name} seed {seed}: trained in {time.perf_counter() - started:.0f} s", flush=True)
        for kind, model in trained.items():
            thresholds = fit_thresholds(validation_scores(model, prepared, config), config)
            scoring_started = time.perf_counter()
            scores, _ = score_test(model.scoring, data, prepared.stats, config)
            score_seconds = time.perf_counter() - scoring_started
            metrics = metrics_at_thresholds(scores, data.test_labels, thresholds, config.window)
            record: dict[str, Any] = {
                "series": name,
                "seed": seed,
                "model": kind,
                **metrics,
                "train_seconds": model.seconds,
                "teacher_seconds": model.teacher_seconds,
                "epochs_run": model.report.epochs_run,
                "best_epoch": model.report.best_epoch,
                "score_seconds": score_seconds,
                "train_windows": int(prepared.train_windows.shape[0]),
                "test_steps": int(scores.shape[0]),
                "threads": torch.get_num_threads(),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            }
            with RAW.open("a") as out:
                out.write(json.dumps(record) + "\n")
            print(
                f"  {kind}: "
                + ", ".join(f"{m} {metrics[m]:.3f}" for m in METRICS)
                + f" ({model.seconds:.0f} s)",
                flush=True,
            )


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def report() -> str:
    records = [json.loads(line) for line in RAW.read_text().splitlines() if line.strip()]
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by[(r["series"], r["model"])].append(r)
    series = sorted({r["series"] for r in records}, key=lambda s: (s != "MSL", s))
    smd = [s for s in series if s.startswith("SMD ")]
    lines = [
        "<!-- written by `python -m benchmarks.windows_grid --report` -->",
        f"Runs: {len(records)} (series x seed x model). Mean ± standard deviation over seeds.",
        "",
    ]

    def table(title: str, rows: list[tuple[str, list[dict[str, Any]]]], pct: bool) -> None:
        prefix = "pct_" if pct else ""
        lines.extend([f"### {title}", ""])
        header = ["model", "seeds", "F1-PA", "P", "R", "F1", "AUC-PR", "VUS-PR", "train s"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for label, rs in rows:
            if not rs:
                continue
            cells = [label, str(len({r["seed"] for r in rs}))]
            for metric in METRICS:
                key = metric if metric in ("auc_pr", "vus_pr") else prefix + metric
                cells.append(_mean_std([r[key] for r in rs]))
            cells.append(f"{np.mean([r['train_seconds'] for r in rs]):.0f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")

    for pct in (False, True):
        which = "percentile threshold" if pct else "Gamma threshold (served)"
        if "MSL" in series:
            table(
                f"MSL, {which}",
                [(LABELS[k], by[("MSL", k)]) for k in MODEL_KINDS],
                pct,
            )
        if smd:
            # Per seed, the mean over machines; then mean ± std of those means over seeds.
            rows = []
            for kind in MODEL_KINDS:
                per_seed: dict[int, list[dict[str, Any]]] = defaultdict(list)
                for s in smd:
                    for r in by[(s, kind)]:
                        per_seed[r["seed"]].append(r)
                complete = [rs for rs in per_seed.values() if len(rs) == len(smd)]
                means = [
                    {
                        "seed": rs[0]["seed"],
                        **{
                            k: float(np.mean([r[k] for r in rs]))
                            for k in rs[0]
                            if isinstance(rs[0][k], float)
                        },
                    }
                    for rs in complete
                ]
                rows.append((LABELS[kind], means))
            table(f"SMD, mean over {len(smd)} machines, {which}", rows, pct)
    if smd:
        lines.extend(["### SMD per machine: F1 (point-wise, Gamma threshold) and VUS-PR", ""])
        lines.append("| machine | " + " | ".join(LABELS[k] for k in MODEL_KINDS) + " |")
        lines.append("|" + "---|" * (len(MODEL_KINDS) + 1))
        for s in smd:
            cells = [s.removeprefix("SMD ")]
            for kind in MODEL_KINDS:
                rs = by[(s, kind)]
                f1 = np.mean([r["f1"] for r in rs]) if rs else np.nan
                vus = np.mean([r["vus_pr"] for r in rs]) if rs else np.nan
                cells.append(f"{f1:.3f} / {vus:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th job from the i-th")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="only write the tables")
    args = parser.parse_args()
    if args.report:
        TABLES.write_text(report() + "\n")
        print(TABLES.read_text())
        return
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(exist_ok=True)
    shard, shards = (int(v) for v in args.shard.split("/"))
    run(shard, shards, tuple(int(s) for s in args.seeds.split(",")))


if __name__ == "__main__":
    main()

"""The sensor-series experiment grid: every windows model on MSL (all channels joined, as Anomaly
Transformer does) and on each SMD machine present, for several seeds; thresholds from held-out
training blocks only. Appends one JSON line per (series, seed, model) to
benchmarks/results/windows_grid.jsonl (runs already there are skipped, so it resumes), and
`--report` turns that file into the markdown tables of benchmarks/results/windows_grid.md.

    python -m benchmarks.windows_grid --shard 0/2 &   # two processes, one thread each
    python -m benchmarks.windows_grid --shard 1/2 &
    python -m benchmarks.windows_grid --random        # the random-score reference rows
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

from training.windows.config import TRAINED_KINDS, WindowsConfig
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
RANDOM = "random"
LABELS = {
    "distilled_student": "distilled student",
    "student": "student (no distillation)",
    "teacher": "teacher",
    "lstm_ae": "LSTM AE",
    "anomaly_transformer": "Anomaly Transformer",
    RANDOM: "random scores (reference)",
}
REPORTED = (*TRAINED_KINDS, RANDOM)


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
    config = WindowsConfig(score_pooling="step")
    done = _done()
    jobs = [(s, seed) for s in _series() for seed in seeds]
    for index, ((name, data_format, subset), seed) in enumerate(jobs):
        if index % shards != shard:
            continue
        if all((name, seed, kind) in done for kind in TRAINED_KINDS):
            continue
        root = DATA_DIR / "timeseries" / ("MSL" if data_format == "msl" else "SMD")
        data = load_data(data_format, root, subset)
        prepared = prepare(data, config)
        started = time.perf_counter()
        trained = train_models(prepared, config, TRAINED_KINDS, seed)
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


def run_random(seeds: tuple[int, ...]) -> None:
    """The same evaluation for uniform random scores, thresholds fitted on random 'validation'
    scores: what the metrics give a detector that knows nothing."""
    config = WindowsConfig(score_pooling="step")
    done = _done()
    for name, data_format, subset in _series():
        root = DATA_DIR / "timeseries" / ("MSL" if data_format == "msl" else "SMD")
        data = load_data(data_format, root, subset)
        labels = data.test_labels
        for seed in seeds:
            if (name, seed, RANDOM) in done:
                continue
            rng = np.random.default_rng(seed)
            thresholds = fit_thresholds(rng.random(size=data.n_train_steps // 5), config)
            scores = rng.random(size=int(labels.shape[0]))
            metrics = metrics_at_thresholds(scores, labels, thresholds, config.window)
            record = {"series": name, "seed": seed, "model": RANDOM, **metrics}
            record.update(train_seconds=0.0, teacher_seconds=0.0, test_steps=int(labels.shape[0]))
            with RAW.open("a") as out:
                out.write(json.dumps(record) + "\n")
        print(f"{name}: random scores done", flush=True)


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def _natural(series: str) -> tuple[bool, list[int | str]]:
    """MSL first, then SMD machines in numeric order (machine-3-2 before machine-3-10)."""
    return series != "MSL", [int(p) if p.isdigit() else p for p in series.replace("-", " ").split()]


# Point-adjusted precision / recall / F1 (%) from METHOD.md (the distillation paper's Table 1);
# SMD there is all 28 machines joined, here the mean over the 19 machines present.
PUBLISHED = {
    "MSL": {
        "Anomaly Transformer": (91.75, 93.90, 92.81),
        "cosine distillation": (92.14, 97.93, 94.94),
    },
    "SMD": {
        "Anomaly Transformer": (88.65, 91.15, 89.88),
        "cosine distillation": (89.10, 94.85, 91.89),
    },
}
THRESHOLDED = ("precision", "recall", "f1", "precision_pa", "recall_pa", "f1_pa")


def _seed_means(
    by: dict[tuple[str, str], list[dict[str, Any]]], machines: list[str], kind: str
) -> list[dict[str, Any]]:
    """For each seed run on every machine, the mean of each number over the machines."""
    per_seed: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for machine in machines:
        for r in by[(machine, kind)]:
            per_seed[r["seed"]].append(r)
    return [
        {
            "seed": seed,
            **{k: float(np.mean([r[k] for r in rs])) for k in rs[0] if isinstance(rs[0][k], float)},
        }
        for seed, rs in sorted(per_seed.items())
        if len(rs) == len(machines)
    ]


def report() -> str:
    records = [json.loads(line) for line in RAW.read_text().splitlines() if line.strip()]
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by[(r["series"], r["model"])].append(r)
    series = sorted({r["series"] for r in records}, key=_natural)
    smd = [s for s in series if s.startswith("SMD ")]
    results = {"MSL": {k: by[("MSL", k)] for k in REPORTED}}
    results["SMD"] = {k: _seed_means(by, smd, k) for k in REPORTED}
    lines = [
        "<!-- written by `python -m benchmarks.windows_grid --report` -->",
        f"Runs: {len(records)} (series x seed x model). Mean ± standard deviation over seeds; "
        f"SMD: the mean over its {len(smd)} machines for each seed, then over seeds.",
        "",
    ]

    lines += ["### Next to the published table (point-adjusted P / R / F1, %)", ""]
    lines += ["| data | model | threshold | P-PA | R-PA | F1-PA |", "|---|---|---|---|---|---|"]
    for data_set, published in PUBLISHED.items():
        for model, (p, r, f) in published.items():
            lines.append(
                f"| {data_set} | {model} (published) | test-set percentile | {p} | {r} | {f} |"
            )
        for kind in ("anomaly_transformer", "distilled_student", "student", RANDOM):
            rs = results[data_set][kind]
            if not rs:
                continue
            for prefix, threshold in (("pct_", "training percentile"), ("", "Gamma (served)")):
                cells = [
                    f"{100 * np.mean([x[prefix + m] for x in rs]):.2f}" for m in THRESHOLDED[3:]
                ]
                lines.append(
                    f"| {data_set} | {LABELS[kind]} (ours) | {threshold} | "
                    + " | ".join(cells)
                    + " |"
                )
    lines.append("")

    header = ["model", "seeds", "F1-PA", "P", "R", "F1", "AUC-PR", "VUS-PR", "train s"]
    for data_set, by_kind in results.items():
        for prefix, threshold in (
            ("", "Gamma threshold (served)"),
            ("pct_", "percentile threshold"),
        ):
            title = "MSL" if data_set == "MSL" else f"SMD, mean over {len(smd)} machines"
            lines += [f"### {title}, {threshold}", ""]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for kind in REPORTED:
                rs = by_kind[kind]
                if not rs:
                    continue
                cells = [LABELS[kind], str(len({x["seed"] for x in rs}))]
                for metric in METRICS:
                    key = metric if metric in ("auc_pr", "vus_pr") else prefix + metric
                    cells.append(_mean_std([x[key] for x in rs]))
                # The distilled student's cost includes its teacher's training.
                teacher = [
                    x.get("teacher_seconds", 0.0) * (kind == "distilled_student") for x in rs
                ]
                seconds = [x["train_seconds"] + t for x, t in zip(rs, teacher, strict=True)]
                cells.append(f"{np.mean(seconds):.0f}")
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")

    lines += ["### Distilled minus undistilled student, paired by series and seed", ""]
    lines += ["| data | metric | mean difference | 95% interval | distilled better / worse |"]
    lines += ["|---|---|---|---|---|"]
    for data_set, names in (("MSL", ["MSL"]), (f"SMD ({len(smd)} machines)", smd)):
        for metric in ("f1", "pct_f1", "auc_pr", "vus_pr"):
            diffs = []
            for name in names:
                student = {r["seed"]: r[metric] for r in by[(name, "student")]}
                for r in by[(name, "distilled_student")]:
                    if r["seed"] in student:
                        diffs.append(r[metric] - student[r["seed"]])
            if not diffs:
                continue
            mean = float(np.mean(diffs))
            half = (
                1.96 * float(np.std(diffs, ddof=1)) / np.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
            )
            better = sum(d > 1e-12 for d in diffs)
            worse = sum(d < -1e-12 for d in diffs)
            label = {"f1": "F1 (Gamma)", "pct_f1": "F1 (percentile)"}.get(
                metric, metric.upper().replace("_", "-")
            )
            lines.append(
                f"| {data_set} | {label} | {mean:+.4f} | [{mean - half:+.4f}, {mean + half:+.4f}] "
                f"| {better} / {worse} of {len(diffs)} |"
            )
    lines.append("")

    if smd:
        lines += ["### SMD per machine: VUS-PR, and F1 at the percentile threshold", ""]
        lines.append("| machine | " + " | ".join(LABELS[k] for k in REPORTED) + " |")
        lines.append("|" + "---|" * (len(REPORTED) + 1))
        for name in smd:
            cells = [name.removeprefix("SMD ")]
            for kind in REPORTED:
                rs = by[(name, kind)]
                if rs:
                    vus = np.mean([r["vus_pr"] for r in rs])
                    cells.append(f"{vus:.3f} / {np.mean([r['pct_f1'] for r in rs]):.3f}")
                else:
                    cells.append("-")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th job from the i-th")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="only write the tables")
    parser.add_argument("--random", action="store_true", help="only score random scores")
    args = parser.parse_args()
    if args.report:
        TABLES.write_text(report() + "\n")
        print(TABLES.read_text())
        return
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(exist_ok=True)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    if args.random:
        run_random(seeds)
        return
    shard, shards = (int(v) for v in args.shard.split("/"))
    run(shard, shards, seeds)


if __name__ == "__main__":
    main()

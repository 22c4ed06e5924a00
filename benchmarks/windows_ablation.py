"""Ablations of the cosine distillation on MSL, the points METHOD.md leaves open: the weight
lambda (0 = no distillation), the axis the cosine runs over (per step across channels, or per
window), and whether the student-teacher disagreement is added to the anomaly score. One teacher
per seed is shared by all students of that seed. Appends one JSON line per (seed, variant) to
benchmarks/results/windows_ablation.jsonl; `--report` writes benchmarks/results/windows_ablation.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.windows_grid import DATA_DIR, SEEDS
from training.windows.config import WindowsConfig
from training.windows.evaluation import (
    fit_thresholds,
    metrics_at_thresholds,
    score_test,
)
from training.windows.loaders import load_data
from training.windows.objectives import cosine_disagreement
from training.windows.pipeline import (
    Prepared,
    TrainedModel,
    prepare,
    train_model,
    validation_scores,
)

RESULTS = Path(__file__).resolve().parent / "results"
RAW = RESULTS / "windows_ablation.jsonl"
TABLE = RESULTS / "windows_ablation.md"
# (label, distill weight, cosine axis)
VARIANTS = (
    ("lambda 0 (no distillation)", 0.0, "step"),
    ("lambda 0.1, per step", 0.1, "step"),
    ("lambda 1, per step (default)", 1.0, "step"),
    ("lambda 10, per step", 10.0, "step"),
    ("lambda 1, per window", 1.0, "window"),
)
WITH_COSINE = "lambda 1, per step, score + cosine disagreement"
METRICS = ("f1_pa", "f1", "pct_f1", "auc_pr", "vus_pr")


class CosineAugmentedScores(nn.Module):
    """Score = the student's squared error + weight * (1 - cos(student, teacher)) at each step."""

    def __init__(self, student: nn.Module, teacher: nn.Module, weight: float) -> None:
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.weight = weight

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.student(windows)
        channel_error = (windows - out) ** 2
        cosine = torch.nn.functional.cosine_similarity(out, self.teacher(windows), dim=-1)
        return channel_error.mean(-1) + self.weight * (1.0 - cosine), channel_error


def _cosine_weight(student: TrainedModel, teacher: TrainedModel, prepared: Prepared) -> float:
    """Scale the disagreement to the reconstruction error's size on the validation windows."""
    windows = torch.from_numpy(prepared.validation_windows)
    with torch.no_grad():
        out = student.model(windows)
        error = float(((windows - out) ** 2).mean())
        disagreement = float(cosine_disagreement(out, teacher.model(windows)))
    return error / max(disagreement, 1e-12)


def _record(
    seed: int, label: str, metrics: dict[str, float], seconds: float, extra: dict[str, Any]
) -> None:
    with RAW.open("a") as out:
        out.write(
            json.dumps({"seed": seed, "variant": label, **metrics, "seconds": seconds, **extra})
            + "\n"
        )
    print(
        f"seed {seed} {label}: " + ", ".join(f"{m} {metrics[m]:.3f}" for m in METRICS), flush=True
    )


def run(seeds: tuple[int, ...]) -> None:
    base = WindowsConfig(score_pooling="step")
    data = load_data("msl", DATA_DIR / "timeseries" / "MSL")
    prepared = prepare(data, base)
    labels = data.test_labels
    for seed in seeds:
        teacher = train_model("teacher", prepared, base, seed)
        for label, weight, axis in VARIANTS:
            config = dataclasses.replace(base, distill_weight=weight, cosine_axis=axis)
            student = train_model("distilled_student", prepared, config, seed, teacher)
            thresholds = fit_thresholds(validation_scores(student, prepared, config), config)
            scores, _ = score_test(student.scoring, data, prepared.stats, config)
            metrics = metrics_at_thresholds(scores, labels, thresholds, config.window)
            _record(seed, label, metrics, student.seconds, {"epochs": student.report.epochs_run})
            if (weight, axis) == (1.0, "step"):
                scale = _cosine_weight(student, teacher, prepared)
                scoring = CosineAugmentedScores(student.model, teacher.model, scale).eval()
                augmented = TrainedModel(
                    "distilled_student", student.model, scoring, student.report, 0
                )
                thresholds = fit_thresholds(validation_scores(augmented, prepared, config), config)
                scores, _ = score_test(scoring, data, prepared.stats, config)
                metrics = metrics_at_thresholds(scores, labels, thresholds, config.window)
                _record(seed, WITH_COSINE, metrics, student.seconds, {"cosine_weight": scale})


def report() -> str:
    records = [json.loads(line) for line in RAW.read_text().splitlines() if line.strip()]
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by[r["variant"]].append(r)
    lines = [
        "<!-- written by `python -m benchmarks.windows_ablation --report` -->",
        "| variant (MSL) | seeds | F1-PA | F1 (Gamma) | F1 (percentile) | AUC-PR | VUS-PR |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in [v[0] for v in VARIANTS] + [WITH_COSINE]:
        rs = by.get(label, [])
        if not rs:
            continue
        cells = [
            f"{np.mean([r[m] for r in rs]):.3f} ± {np.std([r[m] for r in rs]):.3f}" for m in METRICS
        ]
        lines.append(f"| {label} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if args.report:
        TABLE.write_text(report() + "\n")
        print(TABLE.read_text())
        return
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(exist_ok=True)
    started = time.perf_counter()
    run(tuple(int(s) for s in args.seeds.split(",")))
    print(f"done in {time.perf_counter() - started:.0f} s on {os.cpu_count()} CPUs", flush=True)


if __name__ == "__main__":
    main()

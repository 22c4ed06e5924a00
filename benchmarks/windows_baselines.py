"""Simple sensor baselines against the trained windows models, in the same harness: every model
of `auscult train windows --model` on MSL (all channels joined), every SMD machine present, SKAB
(all experiment groups against its anomaly-free recording) and the UCR series present. Each
model is trained on the training split, its thresholds fitted on the held-out training blocks
(as `auscult train windows` does), written as a bundle, and evaluated through ONNX Runtime as
served: VUS-PR, AUC-PR, and at the bundle's default operating point (one false alarm per 1,440
steps) the false alarms per 1,440 normal test steps and the share of labelled segments alarmed.
Every model is scored with both poolings of a step's score (its own error, its window's mean).
Also: training wall and CPU seconds, and the wall and CPU seconds of scoring 1,000 test steps
through the bundle (one ONNX Runtime thread).

Jobs run in order of importance (the fitted models everywhere, then the trained ones seed 0 on
MSL, SMD, SKAB, UCR, then further seeds); each result is appended to
benchmarks/results/windows_baselines.jsonl as it comes, and runs already there are skipped, so an
interrupted run resumes; a second process with `--models` takes the jobs of those models.
`--json` writes the collected benchmarks/results/windows_baselines.json that
`python -m benchmarks.windows_results` turns into docs/RESULTS.md's tables.

    nice -n 10 python -m benchmarks.windows_baselines            # resumes where it stopped
    nice -n 10 python -m benchmarks.windows_baselines --models lstm_ae student   # beside it
    python -m benchmarks.windows_baselines --json                # collect the raw lines
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.windows_grid import DATA_DIR, RESULTS
from service.bundle.loader import load_bundle
from service.scoring.windows import WindowsScorer
from training.windows.bundle import write_bundle
from training.windows.bundle_evaluation import evaluate_bundle_in_full
from training.windows.config import FITTED_KINDS, MODEL_KINDS, POOLINGS, WindowsConfig
from training.windows.evaluation import fit_thresholds
from training.windows.loaders import load_data
from training.windows.loaders.smd import smd_machines
from training.windows.loaders.ucr import ucr_series
from training.windows.pipeline import (
    Prepared,
    TrainedModel,
    prepare,
    train_models,
    validation_part_scores,
)
from training.windows.scoring import scores_for
from training.windows.series import SensorData

RAW = RESULTS / "windows_baselines.jsonl"
COLLECTED = RESULTS / "windows_baselines.json"
SEEDS = (0, 1, 2)
# Deterministic given the data (PCA; kNN while the bank holds every training window; the two
# together): one seed.
DETERMINISTIC = ("pca", "knn", "pca_knn")
# Trained together where one needs the other: the distilled student's teacher is the teacher.
TRAINED_GROUPS = (("distilled_student", "teacher"), ("lstm_ae",), ("student",))
LAST_GROUP = (("anomaly_transformer",),)
FIGURES = (
    "threshold",
    "predicted_false_alarms_per_1440_steps",
    "false_alarms_per_1440_steps",
    "false_alarms_per_hour",
    "normal_flagged_share",
    "segments_alarmed",
    "first_alarm_steps_median",
    "precision",
    "recall",
    "f1",
    "f1_pa",
    "auc_pr",
    "vus_pr",
    "n_steps",
    "n_anomalous_steps",
    "n_segments",
)


@dataclasses.dataclass(frozen=True)
class Series:
    name: str
    data_format: str
    folder: str
    subset: str | None

    def load(self) -> SensorData:
        return load_data(self.data_format, DATA_DIR / "timeseries" / self.folder, self.subset)


def all_series() -> list[Series]:
    """MSL, each SMD machine present, SKAB, each UCR series present."""
    series = [Series("MSL", "msl", "MSL", None)]
    series += [
        Series(f"SMD {m}", "smd", "SMD", m) for m in smd_machines(DATA_DIR / "timeseries" / "SMD")
    ]
    series.append(Series("SKAB", "skab", "SKAB", None))
    series += [
        Series(f"UCR {name}", "ucr", "UCR", name)
        for name in ucr_series(DATA_DIR / "timeseries" / "UCR")
    ]
    return series


def jobs() -> Iterator[tuple[Series, int, tuple[str, ...]]]:
    """(series, seed, models trained together), most important first."""
    series = all_series()
    for kind in FITTED_KINDS:
        for seed in (0,) if kind in DETERMINISTIC else SEEDS:
            for s in series:
                yield s, seed, (kind,)
    for seed in SEEDS:
        for group in (*TRAINED_GROUPS, *LAST_GROUP):
            for s in series:
                yield s, seed, group


def _done() -> set[tuple[str, str, int]]:
    if not RAW.exists():
        return set()
    rows = [json.loads(line) for line in RAW.read_text().splitlines() if line.strip()]
    return {(r["series"], r["model"], r["seed"]) for r in rows}


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _scoring_cost(bundle_dir: Path, data: SensorData) -> dict[str, float]:
    """Wall and CPU seconds per 1,000 test steps, scored through the bundle as served."""
    scorer = WindowsScorer(load_bundle(bundle_dir))
    scorer.score(data.test[0].values[:400])  # warm up
    steps = sum(part.values.shape[0] for part in data.test)
    wall, cpu = time.perf_counter(), time.process_time()
    for part in data.test:
        scorer.score(part.values)
    return {
        "score_wall_ms_per_1000_steps": (time.perf_counter() - wall) * 1e6 / steps,
        "score_cpu_ms_per_1000_steps": (time.process_time() - cpu) * 1e6 / steps,
    }


def evaluate_one(
    series: Series,
    data: SensorData,
    prepared: Prepared,
    trained: TrainedModel,
    config: WindowsConfig,
    seed: int,
) -> dict[str, Any]:
    """Thresholds on the held-out blocks, the bundle, and its figures as served."""
    thresholds = fit_thresholds(
        validation_part_scores(trained, prepared, config), config, data.step_seconds
    )
    with tempfile.TemporaryDirectory() as folder:
        bundle = Path(folder)
        write_bundle(
            bundle,
            name="benchmark",
            version="1",
            trained=trained,
            prepared=prepared,
            data=data,
            config=config,
            thresholds=thresholds,
            seed=seed,
            data_format=series.data_format,
            data_subset=series.subset,
        )
        size = sum(path.stat().st_size for path in bundle.iterdir() if path.is_file())
        result = evaluate_bundle_in_full(bundle, data)
        cost = _scoring_cost(bundle, data)
    return {
        "operating_point": result.operating_point,
        **{key: _finite(result.metrics[key]) for key in FIGURES if key in result.metrics},
        **cost,
        "bundle_bytes": size,
    }


def run_job(series: Series, seed: int, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    data = series.load()
    base = WindowsConfig()
    prepared = prepare(data, base)
    load_before = os.getloadavg()
    trained = train_models(prepared, base, list(kinds), seed)
    rows = []
    for kind in kinds:
        model = trained[kind]
        for pooling in POOLINGS:
            config = dataclasses.replace(base, model=kind, score_pooling=pooling)
            pooled = dataclasses.replace(model, scoring=scores_for(model.model, pooling))
            figures = evaluate_one(series, data, prepared, pooled, config, seed)
            with_teacher = kind == "distilled_student"
            rows.append(
                {
                    "series": series.name,
                    "model": kind,
                    "pooling": pooling,
                    "seed": seed,
                    **figures,
                    "train_wall_seconds": model.seconds + model.teacher_seconds,
                    "train_cpu_seconds": model.cpu_seconds
                    + (trained["teacher"].cpu_seconds if with_teacher else 0.0),
                    "epochs_run": model.report.epochs_run,
                    "train_windows": int(prepared.train_windows.shape[0]),
                    "held_out_steps": int(
                        sum(p.values.shape[0] for p in prepared.validation_parts)
                    ),
                    "load_average_before": load_before,
                    "load_average_after": os.getloadavg(),
                    # Which rows one run measured together.
                    "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            )
    return rows


def run(
    limit_seconds: float | None,
    models: set[str] | None,
    names: set[str] | None = None,
    redo: bool = False,
) -> None:
    """Run every job not yet in RAW (every job, with `redo`); with `models` or `names`, only
    the jobs training one of those models, or on one of those series."""
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    started = time.perf_counter()
    for series, seed, kinds in jobs():
        if models is not None and not models & set(kinds):
            continue
        if names is not None and series.name not in names:
            continue
        # Read again before each job: another process may be working through the same list.
        done = set() if redo else _done()
        if all((series.name, kind, seed) in done for kind in kinds):
            continue
        if limit_seconds is not None and time.perf_counter() - started > limit_seconds:
            print("time limit reached; run again to resume", flush=True)
            return
        job_started = time.perf_counter()
        rows = run_job(series, seed, kinds)
        with RAW.open("a") as out:
            out.write("".join(json.dumps(row) + "\n" for row in rows))
        summary = ", ".join(f"{r['model']}/{r['pooling']} VUS-PR {r['vus_pr']:.3f}" for r in rows)
        print(
            f"{series.name} seed {seed}: {summary} ({time.perf_counter() - job_started:.0f} s)",
            flush=True,
        )


def collect() -> None:
    """The raw lines as one document; of a run recorded twice (two processes, or `--redo`),
    the later line counts."""
    latest: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for line in RAW.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            latest[(row["series"], row["model"], row["pooling"], row["seed"])] = row
    rows = list(latest.values())
    document = {
        "what": __doc__.splitlines()[0] if __doc__ else "",
        "command": "nice -n 10 python -m benchmarks.windows_baselines",
        "config": {
            key: value
            for key, value in dataclasses.asdict(WindowsConfig()).items()
            if not isinstance(value, dict)
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__}, 1 torch thread, 1 ONNX "
        "Runtime thread",
        "runs": rows,
    }
    COLLECTED.write_text(json.dumps(document, indent=1) + "\n")
    print(f"{len(rows)} runs written to {COLLECTED}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="only collect the raw lines")
    parser.add_argument(
        "--limit-minutes", type=float, help="start no new job after this many minutes"
    )
    parser.add_argument(
        "--models", nargs="+", choices=MODEL_KINDS, help="only the jobs that train these models"
    )
    parser.add_argument(
        "--series", nargs="+", help="only these series (e.g. MSL 'SMD machine-1-2')"
    )
    parser.add_argument("--redo", action="store_true", help="run jobs already recorded again")
    args = parser.parse_args()
    if not args.json:
        limit = None if args.limit_minutes is None else args.limit_minutes * 60.0
        models = None if args.models is None else set(args.models)
        run(limit, models, None if args.series is None else set(args.series), args.redo)
    collect()


if __name__ == "__main__":
    main()

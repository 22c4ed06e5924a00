"""`auscult train windows` and `auscult evaluate windows`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.bundle.loader import BundleError
from service.bundle.manifest import (
    HISTORY_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    REPORT_DIR,
    ChannelStats,
    ManifestError,
    OperatingPoint,
    WindowsManifest,
    read_manifest,
    write_manifest,
)
from training.cli_arguments import (
    HelpWithDefaults,
    add_bundle_output_flags,
    check_out,
    fail,
    non_negative_float,
    percentile,
    positive_float,
    positive_int,
    quantile,
    warn,
)
from training.report.writer import write_report
from training.windows.bundle import training_history, write_bundle
from training.windows.bundle_evaluation import (
    PREFIXES,
    BundleEvaluation,
    as_evaluation,
    evaluate_bundle_in_full,
)
from training.windows.config import MODEL_KINDS, POOLINGS, WindowsConfig
from training.windows.drift import drift_warning
from training.windows.evaluation import fit_thresholds
from training.windows.fit import FitSettings
from training.windows.loaders import FORMATS, load_data
from training.windows.objectives import COSINE_AXES
from training.windows.pipeline import prepare, train_models, validation_part_scores
from training.windows.series import SensorData

_DEFAULTS = WindowsConfig()
BUNDLE_FILES = (MODEL_FILE, MANIFEST_FILE, HISTORY_FILE)


def add_train_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "windows",
        help="train a sensor-window model (PCA with kNN by default; the distilled "
        "student of METHOD.md part 2 with --model distilled_student)",
        description="Train on the training split of a sensor data set and write a bundle "
        "(model.onnx, manifest.json, history.json). Every threshold is fitted on held-out blocks "
        "of the training data, never on test data: the Gamma inverse CDF at --r, the "
        "--percentile of the held-out scores, and the lowest threshold whose alarm events (runs "
        "of flagged steps) on the held-out blocks stay within --false-alarm-rate.",
        formatter_class=HelpWithDefaults,
    )
    parser.add_argument(
        "--data", type=Path, required=True, metavar="DIR", help="the data set's folder"
    )
    parser.add_argument(
        "--format", choices=FORMATS, required=True, dest="data_format", help="the data set's layout"
    )
    parser.add_argument(
        "--subset",
        "--machine",
        dest="subset",
        help="SMD machine (e.g. machine-1-1), SKAB group, UCR series (e.g. InternalBleeding16)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="BUNDLE_DIR", help="the bundle folder to write"
    )
    parser.add_argument("--name", help="model name in the manifest (default: from the data)")
    parser.add_argument("--version", default="1", help="the bundle's version")
    parser.add_argument(
        "--model",
        choices=MODEL_KINDS,
        default=_DEFAULTS.model,
        help="the model: trained by gradient descent (distilled_student: METHOD.md part 2; "
        "student, teacher, lstm_ae, anomaly_transformer) or fitted without epochs (pca: "
        "reconstruction from the leading principal components of whole windows; kmeans: "
        "KMeansAD, the nearest of k-means centroids of the training windows; knn: the mean of the "
        "nearest training windows of a memory bank; pca_knn: PCA's window score and kNN's step "
        "score, each in units of its spread on held-out windows, averaged); docs/RESULTS.md "
        "compares them",
    )
    parser.add_argument(
        "--score-pooling",
        choices=POOLINGS,
        default=_DEFAULTS.score_pooling,
        help="a step's score within a window: its own error ('step') or the window's mean error "
        "('window'); by default 'window', and for pca_knn, whose members are pooled their own "
        "way, 'step'",
    )
    parser.add_argument(
        "--window", type=positive_int, default=_DEFAULTS.window, help="steps per window"
    )
    parser.add_argument(
        "--stride",
        type=positive_int,
        default=_DEFAULTS.stride,
        help="steps between the windows the bundle scores (1..window)",
    )
    parser.add_argument(
        "--train-stride",
        type=positive_int,
        default=_DEFAULTS.train_stride,
        help="steps between training windows",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=_DEFAULTS.fit.max_epochs, help="most epochs"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=_DEFAULTS.fit.batch_size, help="mini-batch size"
    )
    parser.add_argument(
        "--lr",
        "--learning-rate",
        dest="learning_rate",
        type=positive_float,
        default=_DEFAULTS.fit.learning_rate,
        help="Adam's learning rate",
    )
    parser.add_argument(
        "--patience",
        type=positive_int,
        default=_DEFAULTS.fit.patience,
        help="epochs without a better validation loss before training stops (the best epoch "
        "is kept)",
    )
    parser.add_argument(
        "--distill-weight",
        type=non_negative_float,
        default=_DEFAULTS.distill_weight,
        help="lambda of the cosine term",
    )
    parser.add_argument(
        "--cosine-axis",
        choices=COSINE_AXES,
        default=_DEFAULTS.cosine_axis,
        help="the cosine per step (across channels) or per window",
    )
    parser.add_argument(
        "--r", type=quantile, default=_DEFAULTS.gamma_r, help="Gamma CDF level of the gamma point"
    )
    parser.add_argument(
        "--percentile",
        type=percentile,
        default=_DEFAULTS.percentile,
        help="held-out score percentile of the percentile point",
    )
    parser.add_argument(
        "--false-alarm-rate",
        type=positive_float,
        metavar="RATE",
        help="alarm events allowed per hour of normal signal where the step interval is known "
        "(SMD, PSM: 60 s; SKAB: 1 s; --step-seconds), else per 10,000 steps; the bundle serves "
        "this point by default. Without it the point is fitted at one alarm per 1,440 steps",
    )
    parser.add_argument(
        "--step-seconds",
        type=positive_float,
        help="seconds between steps, where the data format does not say (csv)",
    )
    parser.add_argument("--seed", type=int, default=0, help="initial weights and batch order")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch threads; 1 is fastest for these small models on a shared machine",
    )
    parser.add_argument(
        "--no-evaluate",
        action="store_true",
        help="skip evaluating the bundle on the data set's labelled test parts",
    )
    add_bundle_output_flags(parser)
    parser.set_defaults(handler=train)


def add_evaluate_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "windows",
        help="evaluate a sensor-window bundle on labelled test data",
        description="Score the data set's test parts with the bundle through ONNX Runtime, as "
        "the service does, and report point-wise, point-adjusted, range-aware and event "
        "figures (false alarms per 1,440 normal steps and per hour where the step interval is "
        "known, share of labelled segments alarmed, steps to the first alarm) at every "
        "operating point of the bundle.",
        formatter_class=HelpWithDefaults,
    )
    parser.add_argument("--bundle", type=Path, required=True, metavar="BUNDLE_DIR")
    parser.add_argument("--data", type=Path, required=True, metavar="DIR")
    parser.add_argument("--format", choices=FORMATS, dest="data_format", help="default: as trained")
    parser.add_argument("--subset", "--machine", dest="subset", help="default: as trained")
    parser.add_argument(
        "--operating-point",
        help="the operating point (name or rule: gamma, percentile, false_alarm_rate) whose "
        "figures are given without prefix; default: the bundle's",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the figures as JSON (with each labelled segment's first alarm)",
    )
    parser.set_defaults(handler=evaluate)


def _default_name(data_format: str, subset: str | None, model: str) -> str:
    raw = "-".join(part for part in (data_format, subset, model.replace("_", "-")) if part)
    return re.sub(r"[^A-Za-z0-9_.-]", "-", raw)[:64]


def train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    try:
        check_out(args.out, args.overwrite, BUNDLE_FILES)
        config = WindowsConfig(
            model=args.model,
            window=args.window,
            stride=args.stride,
            train_stride=args.train_stride,
            distill_weight=args.distill_weight,
            cosine_axis=args.cosine_axis,
            score_pooling=args.score_pooling,
            fit=FitSettings(
                max_epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                patience=args.patience,
                seed=args.seed,
                progress=not args.quiet,
            ),
            gamma_r=args.r,
            percentile=args.percentile,
            false_alarm_rate=args.false_alarm_rate,
        )
        data = load_data(args.data_format, args.data, args.subset)
        if args.step_seconds is not None:
            data = dataclasses.replace(data, step_seconds=args.step_seconds)
        return _train(args, config, data)
    except (ValueError, FileNotFoundError, ManifestError, BundleError) as exc:
        return fail(str(exc))


def _describe_point(point: OperatingPoint, units: tuple[str, ...]) -> str:
    shown = [point.predicted[unit] for unit in units if unit in point.predicted]
    predicted = "; ".join(
        f"{p.rate:.3g} per {p.per} ({p.confidence:.0%} interval {p.low:.3g} to {p.high:.3g})"
        for p in shown
    )
    threshold = point.thresholds["step"]
    return f"{point.name} (target {point.target:g}): {threshold:.5g}; predicted {predicted}"


def _train(args: argparse.Namespace, config: WindowsConfig, data: SensorData) -> int:
    started = time.perf_counter()
    print(
        f"data: {data.source}: {data.n_train_steps} training steps, {len(data.channels)} channels"
    )
    prepared = prepare(data, config)
    held_out = [part.values for part in prepared.validation_parts]
    print(
        f"windows: {prepared.train_windows.shape[0]} for training; "
        f"{sum(v.shape[0] for v in held_out)} steps in {len(held_out)} held-out blocks for early "
        "stopping and thresholds"
    )
    unit_scale = [ChannelStats(name=n, mean=0.0, std=1.0) for n in data.channels]
    warning = drift_warning(
        "the held-out part of the training data", np.concatenate(held_out), unit_scale
    )
    if warning:
        warn(warning)
    trained = train_models(prepared, config, [config.model], args.seed)[config.model]
    history = training_history(trained)
    for stage, epochs in history.stages.items():
        best = history.best_epoch[stage]
        loss = epochs[best - 1].validation_loss
        print(f"{stage}: best epoch {best} of {len(epochs)}, validation loss {loss:.5g}")
    if not history.stages:
        print(f"{config.model}: fitted without epochs in {trained.seconds:.1f} s")
    thresholds = fit_thresholds(
        validation_part_scores(trained, prepared, config), config, data.step_seconds
    )
    budget = thresholds.budget_fit
    if budget is not None and budget.unresolved:
        warn(
            f"the held-out training data ({sum(v.shape[0] for v in held_out)} steps) are too "
            f"short to resolve a budget of {thresholds.budget.describe()}: it allows "
            f"{budget.allowed_events:.2f} alarms there, so the false_alarm_rate threshold sits "
            "above every held-out score and its rate is known only to lie below the interval's "
            "upper end; train on longer normal data for a tighter threshold"
        )
    name = args.name or _default_name(args.data_format, args.subset, config.model)
    manifest = write_bundle(
        args.out,
        name=name,
        version=args.version,
        trained=trained,
        prepared=prepared,
        data=data,
        config=config,
        thresholds=thresholds,
        seed=args.seed,
        data_format=args.data_format,
        data_subset=args.subset,
    )
    units = ("1440 steps", "hour") if data.step_seconds else ("1440 steps", "10000 steps")
    print(f"false-alarm budget: {thresholds.budget.describe()}")
    print("thresholds, with the false-alarm rate each predicts on held-out normal data:")
    for point in thresholds.points:
        print(f"  {_describe_point(point, units)}")
    print(
        f"bundle written to {args.out} in {time.perf_counter() - started:.0f} s "
        f"({config.model}; serves the {thresholds.default_point} point by default)"
    )
    if not args.no_evaluate and data.test:
        result = evaluate_bundle_in_full(args.out, data)
        for message in result.warnings:
            warn(message)
        write_manifest(
            args.out,
            manifest.model_copy(update={"evaluation": as_evaluation(result.metrics, data)}),
        )
        print(f"test parts of {data.name}:")
        print(_table(result))
    if args.no_report:
        # A report left from an earlier training of this folder would describe another model.
        shutil.rmtree(args.out / REPORT_DIR, ignore_errors=True)
    else:
        page = write_report(args.out, None if args.no_evaluate or not data.test else args.data)
        print(f"report: {page}")
    return 0


_ROWS = (
    "threshold",
    "predicted_false_alarms_per_1440_steps",
    "false_alarms_per_1440_steps",
    "false_alarms_per_hour",
    "normal_flagged_share",
    "segments_alarmed",
    "first_alarm_steps_median",
    "first_alarm_steps_mean",
    "precision",
    "recall",
    "f1",
    "f1_pa",
    "flagged_share",
)
_THRESHOLD_FREE = (
    "auc_pr",
    "vus_pr",
    "hit_rate_100",
    "hit_rate_150",
    "n_steps",
    "n_anomalous_steps",
    "n_segments",
)


def _table(result: BundleEvaluation) -> str:
    """One column per operating point (the chosen one starred), then the threshold-free
    figures."""
    metrics = result.metrics
    columns = [
        (rule, prefix) for rule, prefix in PREFIXES.items() if f"{prefix}threshold" in metrics
    ]
    header = [f"{rule}{'*' if rule == result.operating_point else ''}" for rule, _ in columns]
    width = max(len(row) for row in (*_ROWS, *_THRESHOLD_FREE))
    lines = [f"{'':<{width}}  " + "  ".join(f"{h:>16}" for h in header)]
    for row in _ROWS:
        values = [metrics.get(f"{prefix}{row}") for _, prefix in columns]
        if all(v is None for v in values):
            continue
        cells = ["-" if v is None else f"{v:.4g}" for v in values]
        lines.append(f"{row:<{width}}  " + "  ".join(f"{c:>16}" for c in cells))
    lines += [f"{key:<{width}}  {metrics[key]:.4f}" for key in _THRESHOLD_FREE if key in metrics]
    lines.append(f"(* the operating point served by default: {result.operating_point})")
    return "\n".join(lines)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def evaluate(args: argparse.Namespace) -> int:
    try:
        manifest = read_manifest(args.bundle)
        if not isinstance(manifest, WindowsManifest):
            raise ValueError(f"{args.bundle} holds a {manifest.kind} bundle, not a windows one")
        data_format = args.data_format or manifest.data_format
        if data_format is None:
            raise ValueError("the bundle does not record its data format: pass --format")
        subset = args.subset if args.subset is not None else manifest.data_subset
        data = load_data(data_format, args.data, subset)
        result = evaluate_bundle_in_full(args.bundle, data, args.operating_point)
    except (ValueError, FileNotFoundError, ManifestError, BundleError) as exc:
        return fail(str(exc))
    for message in result.warnings:
        warn(message)
    if args.json:
        document: dict[str, Any] = {
            "operating_point": result.operating_point,
            **{key: _finite_or_none(value) for key, value in result.metrics.items()},
            "segments": [dataclasses.asdict(segment) for segment in result.segments],
        }
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(f"bundle: {manifest.name} version {manifest.version} ({manifest.model_type})")
        print(f"data: {data.source}")
        print(_table(result))
    return 0

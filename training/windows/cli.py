"""`auscult train windows` and `auscult evaluate windows`."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch

from service.bundle.loader import BundleError
from service.bundle.manifest import ManifestError, WindowsManifest, read_manifest, write_manifest
from training.windows.bundle import write_bundle
from training.windows.bundle_evaluation import as_evaluation, evaluate_bundle
from training.windows.config import MODEL_KINDS, WindowsConfig
from training.windows.evaluation import fit_thresholds
from training.windows.fit import FitSettings
from training.windows.loaders import FORMATS, load_data
from training.windows.objectives import COSINE_AXES
from training.windows.pipeline import prepare, train_models, validation_scores

_DEFAULTS = WindowsConfig()
_REPORTED = ("f1_pa", "precision", "recall", "f1", "auc_pr", "vus_pr")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_train_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "windows",
        help="train a sensor-window model (teacher-student cosine distillation by default)",
        description="Train on the training split of a sensor data set and write a bundle. The "
        "thresholds are fitted on held-out blocks of the training data, never on test data.",
    )
    parser.add_argument("--data", type=Path, required=True, help="the data set's folder")
    parser.add_argument("--format", choices=FORMATS, required=True, dest="data_format")
    parser.add_argument(
        "--subset", "--machine", dest="subset", help="SMD machine (e.g. machine-1-1), SKAB group"
    )
    parser.add_argument("--out", type=Path, required=True, help="the bundle folder to write")
    parser.add_argument("--name", help="model name in the manifest (default: from the data)")
    parser.add_argument("--version", default="1")
    parser.add_argument("--model", choices=MODEL_KINDS, default=_DEFAULTS.model)
    parser.add_argument("--window", type=int, default=_DEFAULTS.window)
    parser.add_argument(
        "--stride", type=int, default=_DEFAULTS.stride, help="scoring stride the bundle serves"
    )
    parser.add_argument("--train-stride", type=int, default=_DEFAULTS.train_stride)
    parser.add_argument("--epochs", type=int, default=_DEFAULTS.fit.max_epochs)
    parser.add_argument("--batch-size", type=int, default=_DEFAULTS.fit.batch_size)
    parser.add_argument("--learning-rate", type=float, default=_DEFAULTS.fit.learning_rate)
    parser.add_argument("--patience", type=int, default=_DEFAULTS.fit.patience)
    parser.add_argument("--distill-weight", type=float, default=_DEFAULTS.distill_weight)
    parser.add_argument("--cosine-axis", choices=COSINE_AXES, default=_DEFAULTS.cosine_axis)
    parser.add_argument("--r", type=float, default=_DEFAULTS.gamma_r, help="Gamma CDF level")
    parser.add_argument("--percentile", type=float, default=_DEFAULTS.percentile)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--no-evaluate",
        action="store_true",
        help="skip evaluating the bundle on the data set's labelled test parts",
    )
    parser.set_defaults(handler=train)


def add_evaluate_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "windows",
        help="evaluate a sensor-window bundle on labelled test data",
        description="Score the data set's test parts with the bundle through ONNX Runtime, as "
        "the service does, and report point-wise, point-adjusted and range-aware metrics.",
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--format", choices=FORMATS, dest="data_format", help="default: as trained")
    parser.add_argument("--subset", "--machine", dest="subset", help="default: as trained")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(handler=evaluate)


def _default_name(data_format: str, subset: str | None, model: str) -> str:
    raw = "-".join(part for part in (data_format, subset, model.replace("_", "-")) if part)
    return re.sub(r"[^A-Za-z0-9_.-]", "-", raw)[:64]


def train(args: argparse.Namespace) -> int:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        config = WindowsConfig(
            model=args.model,
            window=args.window,
            stride=args.stride,
            train_stride=args.train_stride,
            distill_weight=args.distill_weight,
            cosine_axis=args.cosine_axis,
            fit=FitSettings(
                max_epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                patience=args.patience,
                seed=args.seed,
            ),
            gamma_r=args.r,
            percentile=args.percentile,
        )
        data = load_data(args.data_format, args.data, args.subset)
    except (ValueError, FileNotFoundError) as exc:
        print(f"auscult train windows: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    _log(f"{data.name}: {data.n_train_steps} training steps, {len(data.channels)} channels")
    prepared = prepare(data, config)
    _log(
        f"{prepared.train_windows.shape[0]} training windows, "
        f"{prepared.validation_windows.shape[0]} validation windows"
    )
    trained = train_models(prepared, config, [config.model], args.seed, log=_log)[config.model]
    thresholds = fit_thresholds(validation_scores(trained, prepared, config), config)
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
    _log(
        f"wrote {args.out} ({config.model}, trained in {time.perf_counter() - started:.0f} s; "
        f"threshold {thresholds.gamma.threshold:.4g} at r={config.gamma_r})"
    )
    if not args.no_evaluate and data.test:
        metrics = evaluate_bundle(args.out, data)
        write_manifest(
            args.out, manifest.model_copy(update={"evaluation": as_evaluation(metrics, data)})
        )
        _log("test: " + ", ".join(f"{key} {metrics[key]:.3f}" for key in _REPORTED))
    return 0


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
        metrics = evaluate_bundle(args.bundle, data)
    except (ValueError, FileNotFoundError, ManifestError, BundleError) as exc:
        print(f"auscult evaluate windows: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        width = max(len(key) for key in metrics)
        for key in sorted(metrics):
            print(f"{key:<{width}}  {metrics[key]:.4f}")
    return 0

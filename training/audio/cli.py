"""`auscult train audio` and `auscult evaluate audio`: train a bundle from a folder of clips, and
score a bundle on labelled recordings it never saw."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from service.bundle.loader import BundleError, load_bundle
from service.bundle.manifest import REPORT_DIR, AudioManifest
from training.audio.backbones import BACKBONES
from training.audio.datasets import open_dataset
from training.audio.evaluation import evaluate_scores, format_report, score_recordings
from training.audio.losses import CONTRASTIVE_LOSSES
from training.audio.model import BLOCK_SCORES
from training.audio.pipeline import (
    AUDIO_MODELS,
    HELD_OUT_RECORDINGS,
    AudioTrainingConfig,
    AudioTrainingResult,
    train_audio_bundle,
)
from training.audio.splits import SplitFractions, unseen_recordings
from training.audio.stages import FitSettings
from training.cli_arguments import (
    HelpWithDefaults,
    add_bundle_output_flags,
    fail,
    positive_float,
    quantile,
)
from training.report.writer import write_report

DATA_HELP = (
    "a DCASE 2020 Task 2 machine-type folder (train/ and/or test/ with "
    "normal_id_XX_N.wav / anomaly_id_XX_N.wav), a DCASE root holding such folders, or a folder "
    "with normal/ and one folder per anomaly class (.wav or .flac; other subfolders are ignored)"
)


def add_stage2_flags(parser: argparse.ArgumentParser, *, patience_help: str) -> None:
    """Stage 2's fitting flags, the same in `train audio` and `retrain` (which runs stage 2)."""
    parser.add_argument("--stage2-epochs", type=int, default=50, help="most epochs of stage 2")
    parser.add_argument("--patience", type=int, default=10, help=patience_help)
    parser.add_argument("--batch-size", type=int, default=256, help="mini-batch size")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="Adam's learning rate")


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 is reproducible bit for bit and fastest on a shared machine",
    )


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audio",
        help="train a weakly supervised autoencoder bundle from labelled machine sounds",
        description=(
            "Split the recordings by recording (training, validation for early stopping, "
            "test), train the autoencoder on normal blocks (stage 1), fit a Gamma to its "
            "training scores to get the margin a, push the labelled anomalies above a (stage 2), "
            "export model.onnx with manifest.json, split.json and history.json, fit the served "
            "thresholds on normal scores the model never trained on (out-of-fold by recording, "
            "or held-out recordings when there are enough), print the false-alarm rate each "
            "operating point predicts, and evaluate the bundle on the test recordings."
        ),
        formatter_class=HelpWithDefaults,
    )
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help=DATA_HELP)
    parser.add_argument(
        "--out", type=Path, required=True, metavar="BUNDLE_DIR", help="the bundle folder to write"
    )
    parser.add_argument(
        "--labeled-anomalies",
        type=int,
        default=0,
        metavar="N",
        help="anomalous recordings given to training (one in five of them, rounded, checks "
        "stage 2's early stopping); 0 trains the plain autoencoder (stage 1 only)",
    )
    parser.add_argument(
        "--r",
        type=quantile,
        default=0.99,
        metavar="R",
        help="Gamma CDF value of the stage-2 margin a (and of the served thresholds unless "
        "--decision-r is given)",
    )
    parser.add_argument(
        "--decision-r",
        type=quantile,
        default=None,
        metavar="R",
        help="Gamma CDF value of the served clip and block thresholds (default: --r)",
    )
    parser.add_argument(
        "--false-alarm-rate",
        type=quantile,
        default=0.01,
        metavar="RATE",
        help="share of normal clips the 'false_alarm_rate' operating point (the bundle's "
        "default) may flag; the 'gamma' point at --r is stored beside it",
    )
    parser.add_argument(
        "--threshold-fit",
        choices=("auto", "out_of_fold", "held_out"),
        default="auto",
        help="where the normal scores behind the thresholds come from: out_of_fold (every "
        "normal training recording scored by a model trained without it, k folds by recording), "
        f"held_out (the --threshold-fraction recordings), auto (held_out from "
        f"{HELD_OUT_RECORDINGS} threshold recordings, else out_of_fold)",
    )
    parser.add_argument(
        "--min-threshold-recordings",
        type=int,
        default=10,
        metavar="N",
        help="warn when the thresholds rest on fewer normal recordings than this",
    )
    parser.add_argument(
        "--machine-type",
        default=None,
        metavar="T",
        help="the DCASE machine type to train on when --data is a DCASE root; for a folder "
        "layout, the machine's name in the manifest (default: the folder's name)",
    )
    parser.add_argument(
        "--clip-seconds",
        type=positive_float,
        default=None,
        metavar="S",
        help="cut recordings into clips of this length (the tail shorter than a clip is "
        "dropped); default: each file is one clip",
    )
    parser.add_argument(
        "--backbone",
        choices=BACKBONES,
        default=AudioTrainingConfig.backbone,
        help="block: the paper's 128 mels x 32 frames blocks; context: the DCASE 2020 "
        "baseline's 64 mels x 5-frame context, hop 1 frame",
    )
    parser.add_argument(
        "--score",
        choices=BLOCK_SCORES,
        default=AudioTrainingConfig.score,
        help="the served block score: latent_knn (the default), the distance of the block's "
        "latent code to its 5 nearest codes of training normal blocks; reconstruction, the "
        "mean squared error over all mel bands (the paper); quiet_bands, the mean over the "
        "best-reconstructed half of the bands, which ignores bands taken over by other "
        "machines (see docs/RESULTS.md)",
    )
    parser.add_argument(
        "--model",
        choices=AUDIO_MODELS,
        default=AudioTrainingConfig.model,
        help="autoencoder: the paper's weakly supervised autoencoder (stage 1, then stage 2 "
        "with labelled anomalies); usad, deep_svdd, devnet: the comparators of the paper's "
        "table 3 on the same blocks, thresholds and export (devnet needs labelled anomalies)",
    )
    parser.add_argument(
        "--loss",
        choices=CONTRASTIVE_LOSSES,
        default="hinge",
        help="stage 2's penalty on anomalies: hinge max(0, a-d) (the paper), squared_hinge "
        "max(0, a-d)^2/a, distance (max(0, sqrt(a)-sqrt(d)))^2; see docs/TRAINING.md",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the training")
    parser.add_argument(
        "--name", default=None, help="the bundle's name (default: the --out folder's name)"
    )
    parser.add_argument("--version", default="1", help="the bundle's version")
    parser.add_argument("--description", default=None, help="the manifest's description")
    parser.add_argument(
        "--data-description",
        default=None,
        help="how the manifest names the training data (default: the folder and its counts)",
    )
    parser.add_argument(
        "--sample-rate", type=int, default=16000, help="audio is resampled to this rate"
    )
    parser.add_argument(
        "--train-hop-frames",
        type=int,
        default=None,
        help="frames between the starts of training blocks (default: 8 for block, 1 for "
        "context; served blocks keep the backbone's hop)",
    )
    parser.add_argument("--epochs", type=int, default=100, help="most epochs of stage 1")
    add_stage2_flags(
        parser,
        patience_help="epochs without a better validation loss before a stage stops (the best "
        "epoch is kept)",
    )
    parser.add_argument(
        "--validation-fraction",
        type=quantile,
        default=0.1,
        help="share of normal recordings that check early stopping",
    )
    parser.add_argument(
        "--threshold-fraction",
        type=quantile,
        default=0.15,
        help="share of normal recordings held out to fit the served thresholds",
    )
    parser.add_argument(
        "--test-fraction",
        type=quantile,
        default=0.25,
        help="share of normal recordings held out for the test (unused with DCASE's test/)",
    )
    add_threads_flag(parser)
    add_bundle_output_flags(parser)
    parser.set_defaults(handler=run_train)
    return parser


def _training_config(args: argparse.Namespace) -> AudioTrainingConfig:
    def fit(max_epochs: int) -> FitSettings:
        return FitSettings(
            max_epochs=max_epochs,
            patience=args.patience,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            quiet=args.quiet,
        )

    return AudioTrainingConfig(
        data=args.data,
        out=args.out,
        labeled_anomalies=args.labeled_anomalies,
        r=args.r,
        decision_r=args.decision_r,
        false_alarm_rate=args.false_alarm_rate,
        threshold_fit=args.threshold_fit,
        min_threshold_recordings=args.min_threshold_recordings,
        machine_type=args.machine_type,
        clip_seconds=args.clip_seconds,
        backbone=args.backbone,
        score=args.score,
        model=args.model,
        sample_rate=args.sample_rate,
        train_hop_frames=args.train_hop_frames,
        loss=args.loss,
        stage1=fit(args.epochs),
        stage2=fit(args.stage2_epochs),
        fractions=SplitFractions(
            validation=args.validation_fraction,
            threshold=args.threshold_fraction,
            test=args.test_fraction,
        ),
        seed=args.seed,
        name=args.name,
        version=args.version,
        description=args.description,
        data_description=args.data_description,
        threads=args.threads,
        overwrite=args.overwrite,
    )


def _print_training(result: AudioTrainingResult) -> None:
    manifest = result.manifest
    sides = ", ".join(f"{side} {len(found)}" for side, found in result.split.sides().items())
    margin = manifest.training_margin
    print(f"data: {result.dataset.describe()}")
    print(f"recordings: {sides} (labelled anomalous: {manifest.training.anomaly_recordings})")
    print(
        f"stage 1: best epoch {result.stage1.best_epoch} of {result.stage1.epochs}; "
        f"margin a = {margin.threshold:.6g} at r = {margin.r}"
    )
    if result.stage2 is not None:
        print(
            f"stage 2 ({manifest.training.stage2_loss}): best epoch {result.stage2.best_epoch} "
            f"of {result.stage2.epochs}"
        )
    print(f"thresholds from {result.threshold_scores.describe()}:")
    for point in manifest.operating_points:
        default = " (default)" if point.name == manifest.default_operating_point else ""
        target = f"r = {point.target:g}" if point.rule == "gamma" else f"{point.target:g} per clip"
        print(
            f"  {point.name}{default}, {target}: clip {point.thresholds['clip']:.6g}, "
            f"block {point.thresholds['block']:.6g}"
        )
        for unit in ("clip", "block"):
            p = point.predicted[unit]
            print(
                f"    predicted false-alarm rate per {unit}: {p.rate:.4f} "
                f"({p.confidence:.0%} interval {p.low:.4f} to {p.high:.4f}, "
                f"{point.fit.recordings} recordings)"
            )
    print(f"held-out test recordings, at operating point {manifest.default_operating_point}:")
    print(format_report(result.evaluation))
    for name, report in result.point_evaluations.items():
        if name != manifest.default_operating_point and report.false_alarm_rate is not None:
            print(
                f"  at operating point {name}: false-alarm rate {report.false_alarm_rate:.4f}, "
                f"recall {report.recall if report.recall is not None else float('nan'):.4f}"
            )
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"bundle written to {result.bundle_dir} in {result.seconds:.1f} s")


def run_train(args: argparse.Namespace) -> int:
    try:
        result = train_audio_bundle(_training_config(args))
    except ValueError as exc:  # DatasetError, and settings the config refuses
        return fail(str(exc))
    _print_training(result)
    if args.no_report:
        # A report left from an earlier training of this folder would describe another model.
        shutil.rmtree(result.bundle_dir / REPORT_DIR, ignore_errors=True)
    else:
        # Training always evaluates on the recordings it held out, so the page shows them too.
        try:
            page = write_report(result.bundle_dir, args.data)
        except (BundleError, ValueError) as exc:  # DatasetError, unreadable audio
            return fail(f"the bundle is written but its report is not: {exc}")
        print(f"report: {page}")
    return 0


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audio",
        help="score an audio bundle on labelled recordings",
        description=(
            "Score every clip through the exported bundle exactly as the service does and "
            "report ROC-AUC and pAUC (per machine ID and their mean for DCASE data; per anomaly "
            "class and overall for folder layouts) and precision, recall, F1 and false-alarm "
            "rate at the bundle's clip threshold. Recordings listed in the bundle's split.json "
            "as used for training, validation or thresholds are left out unless "
            "--include-seen is given."
        ),
        formatter_class=HelpWithDefaults,
    )
    parser.add_argument(
        "--bundle", type=Path, required=True, metavar="BUNDLE_DIR", help="the bundle folder"
    )
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help=DATA_HELP)
    parser.add_argument(
        "--machine-type",
        default=None,
        metavar="T",
        help="the DCASE machine type to evaluate when --data is a DCASE root (default: the "
        "bundle's)",
    )
    parser.add_argument(
        "--clip-seconds",
        type=positive_float,
        default=None,
        metavar="S",
        help="clip length (default: the one the bundle was trained with)",
    )
    parser.add_argument(
        "--operating-point",
        default=None,
        metavar="NAME",
        help="judge clips at this operating point's clip threshold (a name or rule the bundle "
        "holds, e.g. gamma or false_alarm_rate; default: the bundle's default)",
    )
    parser.add_argument(
        "--include-seen",
        action="store_true",
        help="also score recordings the bundle used for training, validation or thresholds",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the figures as one JSON object on the last line",
    )
    parser.set_defaults(handler=run_evaluate)
    return parser


def run_evaluate(args: argparse.Namespace) -> int:
    try:
        bundle = load_bundle(args.bundle)
        manifest = bundle.manifest
        if not isinstance(manifest, AudioManifest):
            return fail(f"bundle {args.bundle} is a {manifest.kind} bundle, not an audio one")
        dataset = open_dataset(
            args.data, args.machine_type, preferred_machine_type=manifest.machine_type
        )
        recordings, note = unseen_recordings(dataset, args.bundle, args.include_seen)
        if not recordings:
            return fail(f"{dataset.root} has no recordings the bundle did not see")
        report = evaluate_scores(
            score_recordings(
                bundle, recordings, args.clip_seconds or manifest.training.clip_seconds
            ),
            dataset.layout,
            manifest.thresholds(args.operating_point)[0],
        )
    except (BundleError, ValueError) as exc:  # ValueError: DatasetError, unreadable audio
        return fail(str(exc))
    print(f"bundle: {manifest.name} version {manifest.version} ({manifest.backbone} backbone)")
    print(f"data: {dataset.describe()}")
    print(note)
    print(format_report(report))
    if args.json:
        figures = report.as_json()
        figures["operating_point"] = args.operating_point or manifest.default_operating_point
        print(json.dumps(figures))
    return 0

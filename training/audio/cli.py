"""`auscult train audio` and `auscult evaluate audio`: train a bundle from a folder of clips, and
score a bundle on labelled recordings it never saw."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from service.bundle.loader import BundleError, load_bundle
from service.bundle.manifest import AudioManifest
from training.audio.backbones import BACKBONES
from training.audio.datasets import Dataset, Recording, open_dataset
from training.audio.evaluation import evaluate_scores, format_report, score_recordings
from training.audio.losses import CONTRASTIVE_LOSSES
from training.audio.pipeline import (
    AudioTrainingConfig,
    AudioTrainingResult,
    train_audio_bundle,
)
from training.audio.splits import SplitFractions, read_seen_recordings
from training.audio.stages import FitSettings

DATA_HELP = (
    "a DCASE 2020 Task 2 machine-type folder (train/ and/or test/ with "
    "normal_id_XX_N.wav / anomaly_id_XX_N.wav), a DCASE root holding such folders, or a folder "
    "with normal/ and one folder per anomaly class (.wav or .flac; other subfolders are ignored)"
)


class _HelpWithDefaults(argparse.HelpFormatter):
    """Shows a flag's default unless it has none (None or off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if action.option_strings and not (
            default is None or default is False or default == argparse.SUPPRESS
        ):
            text += " (default: %(default)s)"
        return text


def _fail(message: str) -> int:
    print(f"auscult: error: {message}", file=sys.stderr)
    return 2


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _quantile(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audio",
        help="train a weakly supervised autoencoder bundle from labelled machine sounds",
        description=(
            "Split the recordings by recording (training, validation for early stopping, "
            "held-out normal ones for the thresholds, test), train the autoencoder on normal "
            "blocks (stage 1), fit a Gamma to its training scores to get the margin a, push the "
            "labelled anomalies above a (stage 2), export model.onnx with manifest.json and "
            "split.json, and evaluate the bundle on the test recordings."
        ),
        formatter_class=_HelpWithDefaults,
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
        type=_quantile,
        default=0.99,
        metavar="R",
        help="Gamma CDF value of the stage-2 margin a (and of the served thresholds unless "
        "--decision-r is given)",
    )
    parser.add_argument(
        "--decision-r",
        type=_quantile,
        default=None,
        metavar="R",
        help="Gamma CDF value of the served clip and block thresholds (default: --r)",
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
        type=_positive_float,
        default=None,
        metavar="S",
        help="cut recordings into clips of this length (the tail shorter than a clip is "
        "dropped); default: each file is one clip",
    )
    parser.add_argument(
        "--backbone",
        choices=BACKBONES,
        default="block",
        help="block: the paper's 128 mels x 32 frames blocks; context: the DCASE 2020 "
        "baseline's 64 mels x 5-frame context, hop 1 frame",
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
    parser.add_argument("--stage2-epochs", type=int, default=50, help="most epochs of stage 2")
    parser.add_argument(
        "--patience",
        type=int,
        default=10,
        help="epochs without a better validation loss before a stage stops (the best epoch "
        "is kept)",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="mini-batch size")
    parser.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam's learning rate")
    parser.add_argument(
        "--validation-fraction",
        type=_quantile,
        default=0.1,
        help="share of normal recordings that check early stopping",
    )
    parser.add_argument(
        "--threshold-fraction",
        type=_quantile,
        default=0.15,
        help="share of normal recordings held out to fit the served thresholds",
    )
    parser.add_argument(
        "--test-fraction",
        type=_quantile,
        default=0.25,
        help="share of normal recordings held out for the test (unused with DCASE's test/)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 is reproducible bit for bit and fastest on a shared machine",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a bundle already in --out"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
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
        machine_type=args.machine_type,
        clip_seconds=args.clip_seconds,
        backbone=args.backbone,
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
    print(
        f"thresholds at r = {manifest.clip_decision.r}: clip "
        f"{manifest.clip_decision.threshold:.6g}, block {manifest.block_decision.threshold:.6g}"
    )
    print("held-out test recordings:")
    print(format_report(result.evaluation))
    print(f"bundle written to {result.bundle_dir} in {result.seconds:.1f} s")


def run_train(args: argparse.Namespace) -> int:
    try:
        result = train_audio_bundle(_training_config(args))
    except ValueError as exc:  # DatasetError, and settings the config refuses
        return _fail(str(exc))
    _print_training(result)
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
        formatter_class=_HelpWithDefaults,
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
        type=_positive_float,
        default=None,
        metavar="S",
        help="clip length (default: the one the bundle was trained with)",
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


def _unseen(dataset: Dataset, bundle_dir: Path, include_seen: bool) -> tuple[list[Recording], str]:
    """The recordings to score, and a line saying which were left out and why."""
    recordings = list(dataset.recordings)
    if include_seen:
        return recordings, "scoring all recordings (--include-seen), also those the bundle saw"
    seen = read_seen_recordings(bundle_dir)
    if seen is None:
        return recordings, "the bundle has no split.json: scoring all recordings"
    # A folder layout's machine name is only its folder's name, so a renamed copy of the
    # training data must still lose the recordings the bundle saw.
    same_data = seen.layout == dataset.layout and (
        dataset.layout == "folders" or seen.machine_type == dataset.machine_type
    )
    if not same_data:
        return recordings, (
            f"the bundle was trained on {seen.machine_type} ({seen.layout} layout), not on "
            "this data: scoring all recordings"
        )
    unseen = [r for r in recordings if r.recording_id not in seen.recording_ids]
    return unseen, (
        f"scoring only the {len(unseen)} recordings the bundle never saw; "
        f"{len(recordings) - len(unseen)} that split.json lists as used for training, "
        "validation or thresholds are left out (--include-seen scores them too)"
    )


def run_evaluate(args: argparse.Namespace) -> int:
    try:
        bundle = load_bundle(args.bundle)
        manifest = bundle.manifest
        if not isinstance(manifest, AudioManifest):
            return _fail(f"bundle {args.bundle} is a {manifest.kind} bundle, not an audio one")
        dataset = open_dataset(
            args.data, args.machine_type, preferred_machine_type=manifest.machine_type
        )
        recordings, note = _unseen(dataset, args.bundle, args.include_seen)
        if not recordings:
            return _fail(f"{dataset.root} has no recordings the bundle did not see")
        report = evaluate_scores(
            score_recordings(
                bundle, recordings, args.clip_seconds or manifest.training.clip_seconds
            ),
            dataset.layout,
            manifest.clip_decision.threshold,
        )
    except (BundleError, ValueError) as exc:  # ValueError: DatasetError, unreadable audio
        return _fail(str(exc))
    print(f"bundle: {manifest.name} version {manifest.version} ({manifest.backbone} backbone)")
    print(f"data: {dataset.describe()}")
    print(note)
    print(format_report(report))
    if args.json:
        print(json.dumps(report.as_json()))
    return 0

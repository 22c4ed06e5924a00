"""`auscult retrain`: fine-tune the served bundle of a model on the events operators labelled, and
write the next version into the models folder only if it beats the one in service."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from service.config import Settings
from service.events.database import default_database_url
from service.events.labelled import labelled_audio_events
from training.audio.cli import add_stage2_flags, add_threads_flag
from training.audio.stages import FitSettings
from training.cli_arguments import HelpWithDefaults, fail, quantile, warn
from training.retrain.labels import labelled_clips
from training.retrain.pipeline import MAX_FOLDS, RetrainConfig, RetrainResult, retrain_bundle

# Exit status of a run that worked but whose challenger the promotion rule refused.
REFUSED = 1


def add_retrain_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "retrain",
        help="fine-tune a served audio model on operators' labels; promote it if it is better",
        description=(
            "Load the served (newest) bundle of --model from --models and its torch weights, "
            "the events operators labelled for it (confirmed anomalies are the labelled set, "
            "false alarms join the normal data) and the normal recordings it was trained on "
            "(its split.json says where; --data when they moved), and fine-tune it with stage "
            "2. The challenger is compared with the champion on labelled events neither "
            "trained on (folds by event) and on held-out normal recordings, and written into "
            "--models as the next version only if its AUC is not lower and its false alarms "
            "are within the budget; the registry then serves it. Every decision is printed and "
            "appended to MODELS/.retrain-decisions.jsonl. Exit status: 0 promoted, 1 refused by "
            "the promotion rule, 2 could not run (too few labels, data not found)."
        ),
        formatter_class=HelpWithDefaults,
    )
    parser.add_argument("--model", required=True, metavar="NAME", help="the model's name")
    parser.add_argument(
        "--models", type=Path, required=True, metavar="DIR", help="the served models folder"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="the event database (default: AUSCULT_DATABASE_URL, else events.db under "
        "AUSCULT_STATE_DIR, as the service uses)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="the folder the bundle's training recordings now live in (default: the one its "
        "split.json names)",
    )
    parser.add_argument(
        "--min-anomalies",
        type=int,
        default=3,
        metavar="N",
        help="refuse to retrain with fewer events labelled 'anomaly' (at least 2)",
    )
    parser.add_argument(
        "--folds", type=int, default=MAX_FOLDS, help="most folds by event for the comparison"
    )
    parser.add_argument(
        "--false-alarm-budget",
        type=quantile,
        default=None,
        metavar="RATE",
        help="share of held-out normal clips the challenger may flag (default: the target of "
        "the served bundle's false_alarm_rate operating point)",
    )
    add_stage2_flags(
        parser, patience_help="epochs without a better validation loss before stage 2 stops"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and the training")
    add_threads_flag(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run_retrain)
    return parser


def _database_url(given: str | None) -> str:
    if given is not None:
        return given
    settings = Settings()
    return settings.database_url or default_database_url(settings.state_dir)


def _print(result: RetrainResult) -> None:
    print(
        f"champion: version {result.champion_version} ({result.champion_dir}); labelled events: "
        f"{result.anomaly_events} anomalies, {result.normal_events} normal; "
        f"{result.folds} folds by event"
    )
    for note in result.notes:
        warn(note)
    print(f"challenger version {result.challenger_version} {result.decision.reason}")
    for name, value in result.decision.figures.items():
        print(f"  {name}: {value:.6g}")
    if result.bundle_dir is not None:
        print(f"bundle written to {result.bundle_dir} in {result.seconds:.1f} s")
    else:
        print(f"nothing written ({result.seconds:.1f} s); the champion stays in service")


def run_retrain(args: argparse.Namespace) -> int:
    try:
        events = labelled_audio_events(_database_url(args.database_url), args.model)
        config = RetrainConfig(
            models=args.models,
            model=args.model,
            data=args.data,
            min_anomalies=args.min_anomalies,
            max_folds=args.folds,
            stage2=FitSettings(
                max_epochs=args.stage2_epochs,
                patience=args.patience,
                batch_size=args.batch_size,
                learning_rate=args.lr,
                quiet=args.quiet,
            ),
            false_alarm_budget=args.false_alarm_budget,
            seed=args.seed,
            threads=args.threads,
        )
        result = retrain_bundle(config, labelled_clips(events))
    except ValueError as exc:  # RetrainError, TorchWeightsError, DatasetError, bad settings
        return fail(str(exc))
    except SQLAlchemyError as exc:
        return fail(f"cannot read the labelled events from the event database: {exc}")
    _print(result)
    return 0 if result.decision.promoted else REFUSED

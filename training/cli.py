"""`auscult train|evaluate audio|windows`, `auscult report` and `auscult retrain`: dispatch to
each command-line module."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="auscult")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser("train", help="train a model bundle")
    evaluate = commands.add_parser("evaluate", help="evaluate a model bundle on labelled data")
    train_kinds = train.add_subparsers(dest="kind", required=True, metavar="KIND")
    evaluate_kinds = evaluate.add_subparsers(dest="kind", required=True, metavar="KIND")

    from training.audio import cli as audio_cli
    from training.report.cli import add_report_parser
    from training.retrain.cli import add_retrain_parser
    from training.windows import cli as windows_cli

    add_report_parser(commands)
    add_retrain_parser(commands)
    audio_cli.add_train_parser(train_kinds)
    audio_cli.add_evaluate_parser(evaluate_kinds)
    windows_cli.add_train_parser(train_kinds)
    windows_cli.add_evaluate_parser(evaluate_kinds)

    args = parser.parse_args(list(argv))
    handler = args.handler
    result: int = handler(args)
    return result

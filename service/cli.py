"""The `auscult` command: `serve` runs the service, `bridge mqtt` the MQTT bridge; `train`,
`evaluate` and `report` hand over to training."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# Commands that need the 'train' extra (torch, matplotlib): handed to training/cli.py.
TRAINING_COMMANDS = ("train", "evaluate", "report", "retrain")


def _training_main(argv: list[str]) -> int:
    try:
        from training.cli import main as training_main
    except ImportError as exc:
        print(
            f"auscult: training needs the 'train' extra (pip install 'auscult[train]'): {exc}",
            file=sys.stderr,
        )
        return 2
    return training_main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auscult",
        description="Anomaly detection for factory machines from their sound and sensor series.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from service.server import add_serve_arguments

    add_serve_arguments(commands.add_parser("serve", help="run the scoring service on uvicorn"))
    from service.mqtt.cli import add_bridge_arguments

    add_bridge_arguments(
        commands.add_parser("bridge", help="bridge a message bus to the models (mqtt)")
    )
    from service.ray_serve.cli import add_serve_ray_arguments

    add_serve_ray_arguments(
        commands.add_parser(
            "serve-ray", help="run the service on Ray Serve replicas (the 'ray' extra)"
        )
    )
    commands.add_parser(
        "train", help="train a model bundle (see 'auscult train --help')", add_help=False
    )
    commands.add_parser(
        "evaluate", help="evaluate a model bundle (see 'auscult evaluate --help')", add_help=False
    )
    commands.add_parser(
        "report",
        help="write a bundle's report page (see 'auscult report --help')",
        add_help=False,
    )
    commands.add_parser(
        "retrain",
        help="fine-tune a served model on operators' labels (see 'auscult retrain --help')",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in TRAINING_COMMANDS:
        return _training_main(args_list)
    args = build_parser().parse_args(args_list)
    if args.command == "bridge":
        from service.mqtt.cli import run_bridge

        return run_bridge(args)
    if args.command == "serve-ray":
        from service.ray_serve.cli import run_serve_ray

        return run_serve_ray(args)
    from service.server import run_server

    return run_server(args)


if __name__ == "__main__":
    raise SystemExit(main())

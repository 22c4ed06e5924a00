"""What the training command lines share: the help formatter, the checks of flag values, the
error and warning lines, and the check that --out may be written, so that `train audio` and
`train windows` word and refuse things alike."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


class HelpWithDefaults(argparse.HelpFormatter):
    """Shows a flag's default unless it has none (None or off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if action.option_strings and not (
            default is None or default is False or default == argparse.SUPPRESS
        ):
            text += " (default: %(default)s)"
        return text


def add_bundle_output_flags(parser: argparse.ArgumentParser) -> None:
    """--no-report, --overwrite and --quiet, which every `train` command takes."""
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="do not write the HTML report (BUNDLE/report/index.html, `auscult report`)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a bundle already in --out"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def fail(message: str) -> int:
    """Prints the error as argparse words its own and returns argparse's exit status."""
    print(f"auscult: error: {message}", file=sys.stderr)
    return 2


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def quantile(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def percentile(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 100.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 100, got {text}")
    return value


def check_out(out: Path, overwrite: bool, bundle_files: Sequence[str]) -> None:
    """Refuses an --out that is a file, or that holds any of `bundle_files` without
    --overwrite; raises ValueError with the message the user sees."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    existing = [name for name in bundle_files if (out / name).exists()]
    if existing and not overwrite:
        raise ValueError(
            f"--out {out} already holds a bundle ({', '.join(existing)}); "
            "choose another folder or pass --overwrite"
        )

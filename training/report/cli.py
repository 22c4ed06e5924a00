"""`auscult report BUNDLE [--data DIR] [--out DIR] [--clip FILE]`: write a bundle's report page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.bundle.loader import BundleError
from service.bundle.manifest import REPORT_DIR
from training.report.writer import write_report


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="write a bundle's report: an HTML page with figures of its scores and thresholds",
        description=(
            "Score the data through the exported bundle as the service does (audio: the "
            "recordings its split.json does not list as seen; sensor series: the labelled test "
            "parts of the data set it was trained on) and write index.html with PNG figures: "
            "score histograms with the fitted Gamma and every operating point's threshold, the "
            "ROC curve with AUC and pAUC, the loss per epoch, one clip's block scores and band "
            "errors (audio) or the scores over time with the labelled segments (sensor series)."
        ),
    )
    parser.add_argument("bundle", type=Path, metavar="BUNDLE", help="the bundle folder")
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="the data set the bundle was trained on; without it the page shows only what the "
        "bundle holds",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help=f"the folder to write (default: BUNDLE/{REPORT_DIR}, which the service serves)",
    )
    parser.add_argument(
        "--clip",
        type=Path,
        metavar="FILE",
        help="audio: the WAV or FLAC file to show block by block, scored whole (default: the "
        "highest-scoring clip of the data)",
    )
    parser.set_defaults(handler=run_report)
    return parser


def run_report(args: argparse.Namespace) -> int:
    try:
        index = write_report(args.bundle, args.data, args.out, args.clip)
    except (BundleError, ValueError, FileNotFoundError) as exc:
        print(f"auscult report: error: {exc}", file=sys.stderr)
        return 2
    print(f"report written to {index}")
    return 0

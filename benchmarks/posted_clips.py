"""The clips the HTTP benchmarks post to `auscult serve`, and the options that choose them:
a real UAV flight the default bundle judges normal (`--clip normal`), or a real DCASE clip it
alarms on (`--clip alarm`), each 10 s of 16 kHz mono PCM16 (320 kB)."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import soundfile as sf

from benchmarks.processes import write_output
from service.audio.decode import DecodeLimits
from service.bundle.loader import load_bundle
from service.metrics import Metrics
from service.pipelines.audio_clip import score_clip
from service.scoring.audio import AudioScorer
from service.scoring.decision import Verdict
from service.scoring.detectors import AudioDetector, OperatingPointChoice

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("AUSCULT_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))
BUNDLE = PROJECT_ROOT / "models" / "uav-propeller"


def alarm_clip(data_dir: Path) -> Path:
    """The first real 10 s DCASE 2020 test clip (16 kHz mono PCM16, 320 kB)."""
    for path in sorted((data_dir / "audio" / "dcase2020_dev").glob("*/test/*.wav")):
        if sf.info(path).duration == 10.0:
            return path
    raise SystemExit(f"no 10 s DCASE clips under {data_dir / 'audio' / 'dcase2020_dev'}")


def normal_clip(data_dir: Path, folder: Path, detector: AudioDetector) -> tuple[Path, str, Verdict]:
    """The first 10 s of the first real UAV normal flight `detector` judges normal, written
    to `folder` as a 16 kHz mono PCM16 WAV (320 kB, the size of the alarm clip); where it was
    cut from, and its verdict."""
    for flight in sorted((data_dir / "audio" / "uav_propeller" / "normal").glob("*.flac")):
        samples, rate = sf.read(flight, dtype="int16", frames=160_000)
        if rate != 16_000 or samples.ndim != 1 or samples.size < 160_000:
            continue
        clip = folder / "normal.wav"
        sf.write(clip, samples, rate, subtype="PCM_16")
        verdict = clip_verdict(detector, clip.read_bytes())
        if not verdict.anomaly:
            return clip, f"{flight.relative_to(data_dir)}, its first 10 s", verdict
    raise SystemExit("no UAV normal flight the default bundle judges normal")


def clip_verdict(detector: AudioDetector, wav: bytes) -> Verdict:
    return score_clip(detector, wav, limits=DecodeLimits(), metrics=Metrics()).verdict


def chosen_clip(args: argparse.Namespace, work: Path) -> tuple[Path, str, Verdict]:
    """The clip --clip names, from --data (the normal one cut into `work`): its path, where it
    came from, and the default bundle's verdict on it."""
    detector = AudioDetector.at(AudioScorer(load_bundle(BUNDLE)), OperatingPointChoice())
    if args.clip == "normal":
        return normal_clip(args.data, work, detector)
    clip = alarm_clip(args.data)
    return clip, str(clip.relative_to(args.data)), clip_verdict(detector, clip.read_bytes())


def add_clip_arguments(parser: argparse.ArgumentParser, default_clip: str, results: Path) -> None:
    """--data, --clip and --output, as every benchmark posting one of these clips takes them."""
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--clip",
        choices=["normal", "alarm"],
        default=default_clip,
        help="a UAV flight judged normal, or a DCASE clip the bundle alarms on",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help=f"default: {results.stem}[_alarm].json"
    )


def measure_and_write(
    args: argparse.Namespace,
    measure: Callable[[argparse.Namespace, Path], dict[str, Any]],
    results: Path,
) -> None:
    """Run `measure` with a temporary work folder; write its figures to --output, else to
    `results` (normal clip) or its `_alarm` sibling."""
    with tempfile.TemporaryDirectory() as work:
        result = measure(args, Path(work))
    alarm = results.with_name(f"{results.stem}_alarm.json")
    write_output(args.output or (alarm if args.clip == "alarm" else results), result)

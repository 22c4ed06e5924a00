"""Time LogMelExtractor.log_mel against librosa (melspectrogram + power_to_db) on real 10 s clips
in the same run; write the raw figures to benchmarks/results/features.json and the "Features"
section of docs/BENCHMARKS.md from them."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import librosa
import numpy as np
from threadpoolctl import threadpool_limits

from service.audio.decode import decode_audio
from service.bundle.manifest import LogMelSettings
from service.features.logmel import LogMelExtractor

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("AUSCULT_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))
RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "features.json"
SECTION = "## Features"


def _librosa_log_mel(settings: LogMelSettings) -> Callable[[np.ndarray], np.ndarray]:
    def run(samples: np.ndarray) -> np.ndarray:
        mel = librosa.feature.melspectrogram(
            y=samples,
            sr=settings.sample_rate,
            n_fft=settings.n_fft,
            win_length=settings.win_length,
            hop_length=settings.hop_length,
            n_mels=settings.n_mels,
            power=settings.power,
            center=settings.center,
            pad_mode="constant",
            htk=False,
            norm="slaney",
        )
        return np.asarray(
            librosa.power_to_db(mel, ref=settings.ref, amin=settings.amin, top_db=None)
        )

    return run


def _ten_second_clips(data_dir: Path, count: int) -> list[tuple[Path, np.ndarray]]:
    clips = []
    for path in sorted((data_dir / "audio" / "dcase2020_dev").glob("*/test/*.wav")):
        decoded = decode_audio(path)
        if decoded.sample_rate == 16000 and decoded.duration_s == 10.0:
            clips.append((path, decoded.samples))
        if len(clips) == count:
            break
    if not clips:
        raise SystemExit(f"no 10 s DCASE clips under {data_dir / 'audio' / 'dcase2020_dev'}")
    return clips


def _time(function: Callable[[np.ndarray], np.ndarray], samples: np.ndarray) -> float:
    start = time.perf_counter()
    function(samples)
    return time.perf_counter() - start


def measure(data_dir: Path, count: int, repeats: int) -> dict[str, float]:
    settings = LogMelSettings(sample_rate=16000)
    ours = LogMelExtractor(settings).log_mel
    theirs = _librosa_log_mel(settings)
    clips = _ten_second_clips(data_dir, count)
    worst_difference = max(
        float(np.abs(ours(samples) - theirs(samples)).max()) for _, samples in clips
    )
    ours_s: list[float] = []
    theirs_s: list[float] = []
    ratios: list[float] = []
    # Interleaved, clip by clip, so that load from other processes hits both alike.
    for _ in range(repeats):
        for _, samples in clips:
            mine, reference = _time(ours, samples), _time(theirs, samples)
            ours_s.append(mine)
            theirs_s.append(reference)
            ratios.append(reference / mine)
    return {
        "clips": len(clips),
        "repeats": repeats,
        "ours_ms": 1e3 * statistics.median(ours_s),
        "librosa_ms": 1e3 * statistics.median(theirs_s),
        "ratio": statistics.median(ratios),
        "ratio_q1": statistics.quantiles(ratios, n=4)[0],
        "ratio_q3": statistics.quantiles(ratios, n=4)[2],
        "max_db_difference": worst_difference,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def command(clips: int, repeats: int) -> str:
    """The command as the docs give it, every flag that sets a figure included."""
    return f"python -m benchmarks.features --clips {clips} --repeats {repeats}"


def render(result: dict[str, float], load: float) -> str:
    run = command(int(result["clips"]), int(result["repeats"]))
    return f"""{SECTION}

`{run}` times `LogMelExtractor.log_mel`
against librosa {version("librosa")} (`melspectrogram` + `power_to_db` with the same settings:
16 kHz, n_fft 2048, hop 512, 128 mels, `pad_mode="constant"`, `top_db=None`); raw figures:
`benchmarks/results/features.json`.

- Data: {result["clips"]:.0f} real 10 s clips of `audio/dcase2020_dev` (16 kHz mono PCM16),
  each timed {result["repeats"]:.0f} times, the two extractors interleaved clip by clip in
  the same run.
- Machine: {os.cpu_count()}-core CPU ({_cpu_name()}), {platform.python_implementation()}
  {platform.python_version()}, one thread for each extractor (threadpoolctl); the machine was
  shared with other work (load average {load:.1f} when the run began), which the
  per-clip ratio is meant to cancel out.

| extractor | median time per 10 s clip |
|---|---|
| `LogMelExtractor.log_mel` | {result["ours_ms"]:.1f} ms |
| librosa | {result["librosa_ms"]:.1f} ms |

librosa's time over ours, per clip: median **{result["ratio"]:.2f}x** (quartiles
{result["ratio_q1"]:.2f}x to {result["ratio_q3"]:.2f}x). The largest difference from librosa
on these clips was {result["max_db_difference"]:.1e} dB. The window and the FFT run in float64
as in librosa (a float32 FFT is faster but loses accuracy in quiet bands); the mel projection
is a sparse matrix product.
"""


def write_section(document: Path, section: str) -> None:
    """Replace the Features section of the document (or append it), leaving the rest alone."""
    text = document.read_text(encoding="utf-8") if document.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "".join(lines[end:])
        text = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    document.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real data folder")
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=10, help="timings per clip and extractor")
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with threadpool_limits(limits=1):
        result = measure(args.data, args.clips, args.repeats)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "command": command(args.clips, args.repeats),
        "data": "audio/dcase2020_dev",
        "cpu_cores": os.cpu_count(),
        "cpu": _cpu_name(),
        "python": platform.python_version(),
        "librosa": version("librosa"),
        "load_start": load,
        "load_end": os.getloadavg()[0],
        **result,
    }
    RESULTS.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    section = render(result, load)
    print(section)
    write_section(args.output, section)


if __name__ == "__main__":
    main()

"""Time scoring real 10 s clips through a running `auscult serve` (HTTP POST and a WebSocket
stream) against scoring them in-process, interleaved in the same run, and write the "Service"
section of docs/BENCHMARKS.md."""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import soundfile as sf
from websockets.sync.client import connect

from benchmarks.processes import free_port, serving
from service.audio.decode import DecodeLimits
from service.bundle.loader import load_bundle
from service.bundle.manifest import AudioManifest, read_manifest
from service.metrics import Metrics
from service.pipelines.audio_clip import score_clip
from service.scoring.audio import AudioScorer
from service.scoring.detectors import AudioDetector, OperatingPointChoice

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("AUSCULT_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))
SECTION = "## Service"
_FRAME_SECONDS = 0.1


def _clips(data_dir: Path, count: int) -> list[tuple[Path, bytes]]:
    """Real 10 s DCASE clips, a few of each machine type."""
    paths = sorted((data_dir / "audio" / "dcase2020_dev").glob("*/test/*.wav"))
    chosen = [p for p in paths if sf.info(p).duration == 10.0][:: max(1, len(paths) // count)]
    if not chosen:
        raise SystemExit(f"no 10 s DCASE clips under {data_dir / 'audio' / 'dcase2020_dev'}")
    return [(p, p.read_bytes()) for p in chosen[:count]]


@contextmanager
def _served(models: Path) -> Iterator[str]:
    """`auscult serve` with one scoring thread, as a separate process (its own GIL)."""
    env = {
        "AUSCULT_WORKER_THREADS": "1",
        "AUSCULT_RELOAD_POLL_SECONDS": "0",
        "OMP_NUM_THREADS": "1",
    }
    with serving(
        models, free_port(), env, ("--workers", "1"), ready_seconds=120, stop_seconds=60
    ) as url:
        yield url


def _timed(run: Callable[..., object], *args: object, **kwargs: object) -> float:
    start = time.perf_counter()
    run(*args, **kwargs)
    return time.perf_counter() - start


def _stream(url: str, model: str, wav: bytes) -> None:
    """Send the clip as 100 ms PCM16 frames at once, then stop; wait for the end message."""
    pcm, rate = sf.read(io.BytesIO(wav), dtype="int16")
    frame = int(rate * _FRAME_SECONDS)
    with connect(f"{url.replace('http', 'ws')}/v1/models/{model}/stream") as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": rate, "encoding": "pcm_s16le"}))
        json.loads(ws.recv())
        for start in range(0, pcm.size, frame):
            ws.send(pcm[start : start + frame].astype("<i2").tobytes())
        ws.send(json.dumps({"type": "stop"}))
        while json.loads(ws.recv())["type"] != "end":
            pass


def measure(models: Path, data_dir: Path, count: int, repeats: int) -> dict[str, float | str]:
    bundle_dir = next(
        p
        for p in sorted(models.iterdir())
        if (p / "manifest.json").is_file() and isinstance(read_manifest(p), AudioManifest)
    )
    scorer = AudioScorer(load_bundle(bundle_dir))
    detector = AudioDetector.at(scorer, OperatingPointChoice())
    model = scorer.manifest.name
    clips = _clips(data_dir, count)
    times: dict[str, list[float]] = {"in_process": [], "http": [], "stream": []}
    ratios: dict[str, list[float]] = {"http": [], "stream": []}
    with _served(models) as url, httpx.Client(base_url=url, timeout=60) as http:

        def post(wav: bytes) -> None:
            response = http.post(
                f"/v1/models/{model}/score", content=wav, headers={"Content-Type": "audio/wav"}
            )
            response.raise_for_status()

        for _, wav in clips[:2]:  # warm both paths
            post(wav)
            _stream(url, model, wav)
        # Interleaved clip by clip, so that load from other processes hits every path alike.
        for _ in range(repeats):
            for _, wav in clips:
                local = _timed(
                    score_clip,
                    detector,
                    wav,
                    limits=DecodeLimits(max_seconds=60),
                    metrics=Metrics(),
                )
                remote = _timed(post, wav)
                streamed = _timed(_stream, url, model, wav)
                times["in_process"].append(local)
                times["http"].append(remote)
                times["stream"].append(streamed)
                ratios["http"].append(remote / local)
                ratios["stream"].append(streamed / local)
    result: dict[str, float | str] = {
        "clips": len(clips),
        "repeats": repeats,
        "bundle": f"`{model}` version {scorer.manifest.version}, {scorer.manifest.backbone} on "
        f"{scorer.manifest.features.n_mels} mels x {scorer.manifest.features.frames_per_block} "
        f"frames ({scorer.manifest.description.rstrip('.')})",
    }
    for path, values in times.items():
        result[f"{path}_ms"] = 1e3 * statistics.median(values)
    for path, values in ratios.items():
        quartiles = statistics.quantiles(values, n=4)
        result[f"{path}_ratio"] = statistics.median(values)
        result[f"{path}_q1"], result[f"{path}_q3"] = quartiles[0], quartiles[2]
    return result


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _write_section(document: Path, section: str) -> None:
    """Replace this benchmark's section of the document (or append it), leaving the rest."""
    lines = document.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        lines = [*lines, "\n", section]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
        lines[start : end if end is not None else len(lines)] = [
            section + ("\n" if end is not None else "")
        ]
    document.write_text("".join(lines), encoding="utf-8")


def render(result: dict[str, float | str], load: float) -> str:
    r = result
    return f"""{SECTION}

`python -m benchmarks.service_latency` scores the same real clips three ways, interleaved clip
by clip: in-process (`service.pipelines.audio_clip.score_clip`: decode, log-mel, model), through a
running `auscult serve` with `POST /v1/models/{{name}}/score` (keep-alive connection), and as a
WebSocket stream (100 ms PCM16 frames sent at once, then `stop`, until the `end` message).

- Data: {r["clips"]} real 10 s clips of `audio/dcase2020_dev` (16 kHz mono PCM16, every machine
  type), each scored {r["repeats"]} times per path.
- Bundle: {r["bundle"]}.
- Machine: {os.cpu_count()}-core CPU ({_cpu_name()}), {platform.python_implementation()}
  {platform.python_version()}; the service in its own process with one scoring thread and one
  ONNX Runtime thread; the machine was shared with other work (load average {load:.1f} when the
  run began), which the per-clip ratios are meant to cancel out.

| path | median time per 10 s clip | time over in-process, per clip: median (quartiles) |
|---|---|---|
| in-process | {r["in_process_ms"]:.1f} ms | 1 |
| HTTP `POST /score` | {r["http_ms"]:.1f} ms | {r["http_ratio"]:.2f}x ({r["http_q1"]:.2f}x to {r["http_q3"]:.2f}x) |
| WebSocket stream | {r["stream_ms"]:.1f} ms | {r["stream_ratio"]:.2f}x ({r["stream_q1"]:.2f}x to {r["stream_q3"]:.2f}x) |
"""  # noqa: E501


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real data folder")
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        help="a models folder whose first audio bundle is used (default: a bundle with the "
        "paper's features built by tests/bundle_factory.py)",
    )
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        models = args.models
        if models is None:
            from tests.bundle_factory import make_audio_bundle

            models = Path(scratch)
            make_audio_bundle(models / "demo", name="demo", version="1")
        result = measure(models, args.data, args.clips, args.repeats)
    section = render(result, load)
    print(section)
    _write_section(args.output, section)


if __name__ == "__main__":
    main()

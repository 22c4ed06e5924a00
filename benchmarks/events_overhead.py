"""What the event store costs scoring: `auscult serve` throughput under `hey` with the store off,
on with its defaults, and on keeping every clip's audio as FLAC (the worst case: each request
writes a file), in interleaved rounds of one run, so that machine load drifts over all three
alike. On a shared, loaded machine the wall-clock figures vary more between rounds than the
store costs, so the same configurations are also measured in process as CPU seconds per clip
(scoring plus the writer thread's work, all threads of the process), which load barely moves.
Writes benchmarks/results/events_overhead.json; docs/BENCHMARKS.md's "Event store overhead"
section quotes it.

    python -m benchmarks.events_overhead [--seconds 10] [--rounds 3] [--clients 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import soundfile as sf
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.hey_runs import hey
from benchmarks.posted_clips import BUNDLE, DEFAULT_DATA, PROJECT_ROOT
from benchmarks.processes import free_port, serving, write_output
from service.audio.decode import DecodeLimits
from service.bundle.loader import load_bundle
from service.config import Settings
from service.events.store import EventStore
from service.metrics import Metrics
from service.pipelines.audio_clip import score_clip
from service.scoring.audio import AudioScorer
from service.scoring.detectors import AudioDetector, OperatingPointChoice
from service.usable_cpus import usable_cpus

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "events_overhead.json"
CONFIGS: dict[str, dict[str, str]] = {
    "off": {"AUSCULT_EVENTS_ENABLED": "false"},
    "on": {},
    "on_all_audio": {"AUSCULT_EVENT_NORMAL_AUDIO_FRACTION": "1"},
}


UAV_RECORDING = Path("audio/uav_propeller/normal/ccw_f8_1.flac")


def _normal_clip(data_dir: Path, folder: Path) -> Path:
    """The first 10 s of a real normal UAV flight (16 kHz mono) as PCM16 WAV: a clip the
    served bundle (trained on such flights) calls normal, as most of a plant's traffic is."""
    samples, rate = sf.read(data_dir / UAV_RECORDING, frames=160_000, dtype="float32")
    path = folder / "clip.wav"
    sf.write(path, samples, rate, subtype="PCM_16")
    return path


def _event_counts(url: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name in ("auscult_events_stored", "auscult_events_dropped"):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = f"{sample.name}{{{','.join(sample.labels.values())}}}"
                    counts[key] = sample.value
    return counts


def _run(config: str, models: Path, state: Path, clip: Path, args: argparse.Namespace) -> Any:
    env = {
        "AUSCULT_RELOAD_POLL_SECONDS": "0",
        "AUSCULT_STATE_DIR": str(state),
        **CONFIGS[config],
    }
    with serving(models, free_port(), env) as url:
        score = f"{url}/v1/models/{BUNDLE.name}/score"
        hey(score, clip, args.clients, 2.0)  # warm every worker
        run = hey(score, clip, args.clients, args.seconds)
        run["config"] = config
        run["load_after"] = os.getloadavg()[0]
        run["events"] = _event_counts(url)
    evidence = state / "evidence"
    run["evidence_files"] = sum(1 for _ in evidence.rglob("*.flac")) if evidence.exists() else 0
    return run


def _cpu_per_clip(
    detector: AudioDetector, wav: bytes, store: EventStore | None, clips: int
) -> float:
    """Process CPU seconds per clip over `clips` clips, the writer's work included."""
    limits, metrics = DecodeLimits(max_seconds=60), Metrics()
    started = time.process_time()
    for _ in range(clips):
        score_clip(detector, wav, limits=limits, metrics=metrics, events=store)
    if store is not None:
        store.writer.flush(timeout_s=60)
    return (time.process_time() - started) / clips


def in_process(wav: bytes, work: Path, rounds: int, clips: int) -> dict[str, Any]:
    """CPU seconds per clip with the store off, on, and keeping all audio, interleaved."""
    detector = AudioDetector.at(AudioScorer(load_bundle(BUNDLE)), OperatingPointChoice())
    stores: dict[str, EventStore | None] = {"off": None}
    for config, fraction in (("on", 0.05), ("on_all_audio", 1.0)):
        settings = Settings(
            state_dir=work / f"in-process-{config}", event_normal_audio_fraction=fraction
        )
        stores[config] = EventStore.open(settings, Metrics())
    try:
        _cpu_per_clip(detector, wav, None, 5)  # warm ONNX Runtime and the caches
        seconds: dict[str, list[float]] = {config: [] for config in stores}
        for _ in range(rounds):
            for config, store in stores.items():
                seconds[config].append(_cpu_per_clip(detector, wav, store, clips))
    finally:
        for store in stores.values():
            if store is not None:
                store.close()
    median = {config: statistics.median(values) for config, values in seconds.items()}
    return {
        "rounds": rounds,
        "clips_per_round": clips,
        "cpu_ms_per_clip": {
            config: [1e3 * v for v in values] for config, values in seconds.items()
        },
        "median_cpu_ms_per_clip": {config: 1e3 * v for config, v in median.items()},
        "on_over_off": median["on"] / median["off"],
        "on_all_audio_over_off": median["on_all_audio"] / median["off"],
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("hey") is None:
        raise SystemExit("this benchmark needs hey on PATH: apt-get install -y hey")
    work = tempfile.TemporaryDirectory()
    clip = _normal_clip(args.data, Path(work.name))
    result: dict[str, Any] = {
        "clip": f"{UAV_RECORDING}, first 10 s as PCM16 WAV ({clip.stat().st_size} bytes)",
        "bundle": BUNDLE.name,
        "usable_cpus": usable_cpus(),
        "machine": f"{os.cpu_count()}-core {platform.machine()}, {platform.python_version()}",
        "load_before": os.getloadavg()[0],
        "clients": args.clients,
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
    }
    runs = []
    with work:
        result["in_process"] = in_process(
            clip.read_bytes(), Path(work.name), args.cpu_rounds, args.cpu_clips
        )
        models = Path(work.name) / "models"
        shutil.copytree(BUNDLE, models / BUNDLE.name)
        for round_index in range(args.rounds):
            for config in CONFIGS:
                # A fresh state folder per run: each starts from an empty database.
                state = Path(work.name) / f"state-{config}-{round_index}"
                run = _run(config, models, state, clip, args)
                run["round"] = round_index
                runs.append(run)
                print(json.dumps(run), flush=True)
    goodput = {
        config: statistics.median(r["goodput_per_s"] for r in runs if r["config"] == config)
        for config in CONFIGS
    }
    result |= {
        "runs": runs,
        "median_goodput_per_s": goodput,
        "on_over_off": goodput["on"] / goodput["off"],
        "on_all_audio_over_off": goodput["on_all_audio"] / goodput["off"],
        "load_after": os.getloadavg()[0],
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each hey run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of all configs")
    parser.add_argument("--clients", type=int, default=8, help="concurrent hey clients")
    parser.add_argument("--cpu-rounds", type=int, default=5, help="in-process rounds")
    parser.add_argument("--cpu-clips", type=int, default=40, help="clips per in-process round")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = measure(args)
    write_output(args.output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

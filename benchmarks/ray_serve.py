"""Throughput of Auscult on Ray Serve with 1 and 2 replicas, driven by `hey` (Debian package
`hey`) through Ray's HTTP proxy with a real 10 s DCASE clip, against `auscult serve` (its
default workers, measured before and after the Ray runs) and the in-process ceiling measured
in the same run. Starts a local Ray
instance (loopback, no dashboard) and stops it. Writes benchmarks/results/ray_serve.json;
docs/BENCHMARKS.md's "Ray Serve" section quotes it.

    python -m benchmarks.ray_serve [--seconds 5] [--levels 1,4,16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.capacity_http import in_process_seconds
from benchmarks.hey_runs import hey
from benchmarks.posted_clips import BUNDLE, DEFAULT_DATA, alarm_clip
from benchmarks.processes import serving, write_output
from service.config import Settings
from service.usable_cpus import usable_cpus

RESULTS = Path(__file__).resolve().parent / "results" / "ray_serve.json"


def _load() -> float:
    return os.getloadavg()[0]


def _levels(url: str, clip: Path, levels: list[int], seconds: float) -> list[dict[str, Any]]:
    score = f"{url}/v1/models/{BUNDLE.name}/score"
    hey(score, clip, 4, 2.0)  # warm every replica or worker
    runs = []
    for clients in levels:
        run = hey(score, clip, clients, seconds) | {"load_after": _load()}
        runs.append(run)
        print(json.dumps(run), flush=True)
    return runs


def _on_ray(models: Path, clip: Path, args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    # Loopback only: Ray reads this when it is imported (see tests/deployment/test_ray_serve.py);
    # a throw-away instance needs no token written to the home folder.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray import serve

    from service.ray_serve.runner import deploy
    from service.ray_serve.settings import RaySettings

    settings = Settings(models_dir=models, reload_poll_seconds=0)
    shutdown_serve: Callable[[], None] = serve.shutdown
    # Ray's logs and sockets in a folder of this run's own, removed afterwards.
    ray_dir = tempfile.mkdtemp(prefix="auscult-ray-")
    ray.init(
        num_cpus=usable_cpus(), include_dashboard=False, log_to_driver=False, _temp_dir=ray_dir
    )
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        for replicas in (1, 2):
            # Deploying again updates the application in place: 1 replica, then 2.
            deploy(settings, RaySettings(replicas=replicas), host="127.0.0.1", port=args.port)
            runs[f"ray_{replicas}_replicas"] = _levels(
                f"http://127.0.0.1:{args.port}", clip, args.levels, args.seconds
            )
    finally:
        shutdown_serve()
        ray.shutdown()
        shutil.rmtree(ray_dir, ignore_errors=True)
    return runs


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("hey") is None:
        raise SystemExit("this benchmark needs hey on PATH: apt-get install -y hey")
    clip = alarm_clip(args.data)
    wav = clip.read_bytes()
    cpus = usable_cpus()
    result: dict[str, Any] = {
        "clip": str(clip.relative_to(args.data)),
        "clip_bytes": len(wav),
        "bundle": f"{BUNDLE.name} (the default bundle, copied to a temporary models folder)",
        "usable_cpus": cpus,
        "machine": f"{os.cpu_count()}-core {platform.machine()}, {platform.python_version()}",
        "load_before": _load(),
        "seconds_per_level": args.seconds,
        "levels": args.levels,
    }
    seconds = in_process_seconds(BUNDLE, wav, args.repeats)
    with tempfile.TemporaryDirectory() as work:
        models = Path(work) / "models"
        shutil.copytree(BUNDLE, models / BUNDLE.name)
        # `auscult serve` before and after Ray: the baseline brackets the Ray runs in time.
        with serving(models, args.port, {"AUSCULT_RELOAD_POLL_SECONDS": "0"}) as url:
            runs = {"auscult_serve_before": _levels(url, clip, args.levels, args.seconds)}
        runs |= _on_ray(models, clip, args)
        with serving(models, args.port, {"AUSCULT_RELOAD_POLL_SECONDS": "0"}) as url:
            runs["auscult_serve_after"] = _levels(url, clip, args.levels, args.seconds)
    result |= {
        "in_process_ms": 1e3 * seconds,
        "in_process_ceiling_per_s": cpus / seconds,
        "runs": runs,
        "peak_goodput_per_s": {
            name: max(run["goodput_per_s"] for run in series) for name, series in runs.items()
        },
        "load_after": _load(),
    }
    peaks = result["peak_goodput_per_s"]
    baseline = (peaks["auscult_serve_before"] + peaks["auscult_serve_after"]) / 2
    result["peak_over_auscult_serve"] = {
        name: peak / baseline for name, peak in peaks.items() if name.startswith("ray_")
    }
    result["peak_over_in_process_ceiling"] = {
        name: peak / result["in_process_ceiling_per_s"] for name, peak in peaks.items()
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each hey run")
    parser.add_argument(
        "--levels",
        type=lambda text: [int(level) for level in text.split(",")],
        default=[1, 4, 16],
        help="concurrent clients, comma-separated",
    )
    parser.add_argument("--repeats", type=int, default=100, help="in-process clips")
    parser.add_argument("--port", type=int, default=18766)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = measure(args)
    write_output(args.output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""MQTT bridge throughput next to the WebSocket's, in one run on the same frames: N device
streams (levels) each send the same number of JSON sensor frames (rows of SMD machine-1-2's
real test series, 38 channels) as fast as their transport lets them, to `auscult bridge mqtt`
through a local Mosquitto (QoS 1, one connection per device, each PUBACK awaited) and to
`auscult serve`'s sensor WebSocket (one connection per device, each frame's `steps` answer
awaited, as the protocol asks). Every process is pinned to the same 2 CPUs; the bridge and the
server each score with 2 threads. Reports, per level and transport, frames/s and rows/s from
the first frame sent to the last verdict received (median of --repeats runs, the transports
alternated), and checks every step got its verdict.
Writes benchmarks/results/mqtt_bridge.json; docs/BENCHMARKS.md's "MQTT bridge" section quotes it.

    python -m benchmarks.mqtt_bridge [--levels 1,8,32,128] [--frames 800] [--rows 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import numpy as np
from websockets.asyncio.client import connect

from benchmarks.processes import free_port, serving, uptime
from tests.bundle_factory import make_windows_bundle
from tests.service.mqtt.broker import Mosquitto

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("AUSCULT_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))
RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "mqtt_bridge.json"
MACHINE = "machine-1-2"
MODEL = "smd"
WINDOW, STRIDE = 100, 50
THREADS = "2"


def _series(data_dir: Path) -> np.ndarray:
    path = data_dir / "timeseries" / "SMD" / "test" / f"{MACHINE}.txt.gz"
    if not path.exists():
        raise SystemExit(f"{path} not found (set AUSCULT_DATA_DIR)")
    rows: np.ndarray = np.loadtxt(path, delimiter=",")
    return rows


def _device_rows(series: np.ndarray, devices: int, frames: int, rows: int) -> list[list[Any]]:
    """Each device's frames of rows: consecutive rows of the series, device d starting d x 97
    rows in; at least two windows per device, so that every device's steps get verdicts."""
    per_device = max(-(-frames // devices), -(-2 * WINDOW // rows))
    out = []
    for device in range(devices):
        first = (device * 97) % (len(series) - per_device * rows)
        starts = range(first, first + per_device * rows, rows)
        out.append([series[s : s + rows].tolist() for s in starts])
    return out


def _mqtt_frames(rows: list[list[Any]]) -> list[list[str]]:
    return [[json.dumps({"samples": r, "seq": n}) for n, r in enumerate(d)] for d in rows]


def _ws_frames(rows: list[list[Any]]) -> list[list[str]]:
    return [[json.dumps({"type": "samples", "samples": r}) for r in d] for d in rows]


async def _mqtt_level(port: int, frames: list[list[str]], rows: int) -> dict[str, Any]:
    expected_steps = sum(len(f) for f in frames) * rows
    ended: set[str] = set()
    steps = 0
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=f"bench-reader-{len(frames)}"
    ) as reader:
        await reader.subscribe(f"auscult/out/{MODEL}/#", qos=1)

        async def device(number: int, sent: list[str]) -> None:
            topic = f"auscult/in/{MODEL}/level{len(frames)}-d{number}/sensor"
            async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=20) as client:
                for frame in sent:
                    await client.publish(topic, frame, qos=1)
                await client.publish(topic, '{"end": true}', qos=1)

        started = time.perf_counter()
        senders = [asyncio.create_task(device(n, f)) for n, f in enumerate(frames)]
        async for message in reader.messages:
            result = json.loads(message.payload)
            if result["type"] == "steps":
                steps += len(result["scores"])
            elif result["type"] == "end":
                ended.add(result["device"])
                if len(ended) == len(frames):
                    break
        elapsed = time.perf_counter() - started
        await asyncio.gather(*senders)
    return _figures(frames, rows, elapsed, steps, expected_steps)


async def _ws_level(url: str, frames: list[list[str]], rows: int) -> dict[str, Any]:
    expected_steps = sum(len(f) for f in frames) * rows
    counted: list[int] = []

    async def device(sent: list[str]) -> None:
        async with connect(f"{url.replace('http', 'ws')}/v1/models/{MODEL}/stream") as ws:
            await ws.send(json.dumps({"type": "start"}))
            assert json.loads(await ws.recv())["type"] == "ready"
            steps = 0
            for frame in sent:
                await ws.send(frame)
                steps += len(json.loads(await ws.recv())["scores"])
            await ws.send(json.dumps({"type": "stop"}))
            async for text in ws:
                message = json.loads(text)
                if message["type"] == "steps":
                    steps += len(message["scores"])
            counted.append(steps)

    started = time.perf_counter()
    await asyncio.gather(*(device(f) for f in frames))
    elapsed = time.perf_counter() - started
    return _figures(frames, rows, elapsed, sum(counted), expected_steps)


def _figures(
    frames: list[list[str]], rows: int, elapsed: float, steps: int, expected: int
) -> dict[str, Any]:
    sent = sum(len(f) for f in frames)
    return {
        "devices": len(frames),
        "frames": sent,
        "rows_per_frame": rows,
        "seconds": round(elapsed, 3),
        "frames_per_second": round(sent / elapsed, 1),
        "rows_per_second": round(sent * rows / elapsed, 1),
        "steps_with_verdicts": steps,
        "steps_expected": expected,
    }


@contextmanager
def _bridge(models: Path, broker_port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "AUSCULT_MQTT_PORT": str(broker_port),
        "AUSCULT_MQTT_CLIENT_ID": "bench-bridge",
        "AUSCULT_WORKER_THREADS": THREADS,
    }
    command = [sys.executable, "-m", "service.cli", "bridge", "mqtt", "--models", str(models),
               "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


async def _wait_for_bridge(port: int) -> None:
    """The bridge is up once a frame sent to it is answered."""
    frame = json.dumps({"samples": [[0.0] * 38] * WINDOW, "end": True})
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(f"auscult/out/{MODEL}/warm-up/verdicts", qos=1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            await client.publish(f"auscult/in/{MODEL}/warm-up/sensor", frame, qos=1)
            try:
                async with asyncio.timeout(2):
                    async for _ in client.messages:
                        return
            except TimeoutError:
                continue
    raise SystemExit("the bridge did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,8,32,128", help="device streams at once, per level")
    parser.add_argument(
        "--frames",
        type=int,
        default=800,
        help="frames per run, all devices (at least 2 windows each)",
    )
    parser.add_argument("--rows", type=int, default=10, help="rows (steps) per frame")
    parser.add_argument("--repeats", type=int, default=3, help="runs per level and transport")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    mosquitto = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if mosquitto is None:
        raise SystemExit("mosquitto is not installed (scripts/install-test-tools installs it)")
    cpus = sorted(os.sched_getaffinity(0))[:2]
    os.sched_setaffinity(0, cpus)  # inherited by the broker, the bridge and the server
    series = _series(args.data)
    levels = [int(n) for n in args.levels.split(",")]
    load_before = uptime()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mqtt-bench-") as folder:
        root = Path(folder)
        models = root / "models"
        make_windows_bundle(models / MODEL, name=MODEL, channels=38, window=WINDOW, stride=STRIDE)
        broker = Mosquitto(mosquitto, root / "broker")
        broker.start()
        try:
            env = {"AUSCULT_WORKER_THREADS": THREADS, "AUSCULT_RELOAD_POLL_SECONDS": "0"}
            with (
                _bridge(models, broker.port),
                serving(models, free_port(), env, ["--workers", "1"]) as url,
            ):
                asyncio.run(_wait_for_bridge(broker.port))
                httpx.get(f"{url}/v1/models/{MODEL}").raise_for_status()
                for devices in levels:
                    rows = _device_rows(series, devices, args.frames, args.rows)
                    runs: dict[str, list[dict[str, Any]]] = {"mqtt": [], "websocket": []}
                    for repeat in range(args.repeats):
                        # Alternated, so a change of the machine's load hits both alike.
                        order = ["mqtt", "websocket"][:: 1 if repeat % 2 == 0 else -1]
                        for transport in order:
                            if transport == "mqtt":
                                level = _mqtt_level(broker.port, _mqtt_frames(rows), args.rows)
                            else:
                                level = _ws_level(url, _ws_frames(rows), args.rows)
                            runs[transport].append(asyncio.run(level))
                    summary = {
                        transport: {
                            "median_frames_per_second": statistics.median(
                                r["frames_per_second"] for r in measured
                            ),
                            "all_steps_judged": all(
                                r["steps_with_verdicts"] == r["steps_expected"] for r in measured
                            ),
                            "runs": measured,
                        }
                        for transport, measured in runs.items()
                    }
                    mqtt, ws = summary["mqtt"], summary["websocket"]
                    print(f"{devices} devices: MQTT {mqtt['median_frames_per_second']} frames/s, "
                          f"WebSocket {ws['median_frames_per_second']} frames/s "
                          "(medians)", flush=True)  # fmt: skip
                    results.append({"devices": devices, **summary})
        finally:
            broker.stop()
    report = {
        "command": "python -m benchmarks.mqtt_bridge " + " ".join(sys.argv[1:]),
        "data": f"SMD {MACHINE} test series (real), {len(series)} rows x 38 channels",
        "model": f"tests/bundle_factory.py windows bundle, 38 channels, window {WINDOW}, "
        f"stride {STRIDE}",
        "cpus": cpus,
        "scoring_threads": int(THREADS),
        "mosquitto": subprocess.run(
            [mosquitto, "-h"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0],
        "python": platform.python_version(),
        "uptime_before": load_before,
        "uptime_after": uptime(),
        "levels": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

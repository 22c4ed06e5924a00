"""Concurrent real-time audio streams on `auscult serve` with its default settings: N streams
started together, each sending 100 ms frames of real 16 kHz DCASE audio paced in real time
(frame k at start + k x 100 ms), N ramped until blocks are lost or the p99 lag of the block
verdicts passes 1 s. Reports, per level, blocks expected / received, streams closed early (with
their error codes), lag p50/p99/max, the server's CPU use, the latency of /healthz during the
run (the server's event-loop lag) and the client's own lateness (the load generator's lag), and
says where it broke and what broke first. Writes benchmarks/results/streams_capacity.json;
docs/BENCHMARKS.md's "Concurrent streams" section quotes it.

    python -m benchmarks.streams_capacity [--levels 200,400,600,800,1000] [--seconds 20]

Lag of a block = when its verdict arrived - when the frame with its last sample was due.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf
from uvloop import new_event_loop
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from benchmarks.processes import free_port, serving, write_output
from service.http_protocol import raise_descriptor_limit
from service.usable_cpus import usable_cpus

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("AUSCULT_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))
BUNDLE = PROJECT_ROOT / "models" / "uav-propeller"
RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "streams_capacity.json"
RATE = 16000
FRAME_SECONDS = 0.1
MAX_P99_LAG_S = 1.0


def _clips(data_dir: Path, count: int) -> list[np.ndarray]:
    """Real 10 s DCASE 2020 ToyConveyor test clips of normal operation as int16 samples (16 kHz
    mono): a plant's streams are normal most of the time."""
    folder = data_dir / "audio" / "dcase2020_dev" / "ToyConveyor" / "test"
    paths = sorted(folder.glob("normal_*.wav"))
    clips = [sf.read(p, dtype="int16")[0] for p in paths[:count]]
    if not clips:
        raise SystemExit(f"no DCASE clips under {data_dir}")
    return clips


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def cpu_by_process(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of a process and of each of its children, by pid, from
    /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    seconds = {}
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[p] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children, from /proc."""
    return sum(cpu_by_process(pid).values())


def worker_pids(pid: int) -> list[int]:
    """The worker processes of the `auscult serve` supervisor `pid` (its other child, the
    multiprocessing resource tracker, left out)."""
    workers = []
    for child in cpu_by_process(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            workers.append(child)
    return workers


def server_pid(port: int) -> int:
    """The `auscult serve` process listening on `port` (the parent of its workers)."""
    out = subprocess.run(
        ["pgrep", "-f", "--", f"service.cli serve .*--port {port} "], capture_output=True, text=True
    )
    pids = [int(p) for p in out.stdout.split()]
    if not pids:
        raise SystemExit("cannot find the server process")
    return min(pids)


class HealthProbe:
    """GET /healthz every 100 ms from a thread of its own; its latency is the server's
    event-loop lag (the route does no work)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self.latencies: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    client.get(f"{self._url}/healthz")
                    self.latencies.append(time.perf_counter() - started)
                except httpx.HTTPError:
                    self.latencies.append(10.0)
                self._stop.wait(0.1)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def _one_stream(
    url: str, pcm: bytes, t0: float, lags: list[float], late: list[float]
) -> dict[str, Any]:
    """Stream `pcm` paced from t0; the blocks received and how the stream ended."""
    frame_bytes = int(2 * RATE * FRAME_SECONDS)
    received = 0
    error: str | None = None
    loop = asyncio.get_running_loop()
    try:
        async with connect(url, open_timeout=60, max_queue=None) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": RATE}))
            ready = json.loads(await ws.recv())
            if ready.get("type") != "ready":
                return {"received": 0, "error": ready.get("code", "no ready")}

            async def reader() -> None:
                nonlocal received, error
                async for message in ws:
                    answer = json.loads(message)
                    if answer["type"] == "score":
                        received += 1
                        # Its last sample was sent with the frame holding it.
                        due = math.ceil(answer["end_s"] / FRAME_SECONDS - 1e-9) * FRAME_SECONDS
                        lags.append(loop.time() - (t0 + due))
                    elif answer["type"] == "error":
                        error = answer["code"]

            reading = asyncio.create_task(reader())
            for k, offset in enumerate(range(0, len(pcm), frame_bytes)):
                due = t0 + (k + 1) * FRAME_SECONDS  # its last sample exists only then
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                else:
                    late.append(-wait)
                await ws.send(pcm[offset : offset + frame_bytes])
            await ws.send(json.dumps({"type": "stop"}))
            await reading
    except (ConnectionClosed, OSError, TimeoutError) as exc:
        error = error or f"{type(exc).__name__}: {exc}"
    return {"received": received, "error": error}


async def _every_worker_ready(url: str, workers: int, timeout_s: float = 180.0) -> None:
    """Wait until streams reach a loaded model on every worker: a worker serves connections
    while it still loads its models, and /readyz answered by one says nothing of the others.
    Rounds of streams opened together (the kernel spreads them over the workers) must all be
    ready, twice in a row."""

    async def one() -> str:
        async with connect(url, open_timeout=30) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": RATE}))
            return str(json.loads(await ws.recv()).get("type"))

    loop = asyncio.get_running_loop()
    deadline, good_rounds = loop.time() + timeout_s, 0
    while good_rounds < 2:
        answers = await asyncio.gather(*(one() for _ in range(8 * workers)))
        good_rounds = good_rounds + 1 if all(a == "ready" for a in answers) else 0
        if loop.time() > deadline:
            raise SystemExit(f"the server's workers were not all ready: {answers}")
        await asyncio.sleep(1.0)


async def _level(url: str, streams: int, audio: list[bytes]) -> dict[str, Any]:
    lags: list[float] = []
    late: list[float] = []
    loop = asyncio.get_running_loop()
    # Everyone connects first; the paced sending starts together a moment later.
    t0 = loop.time() + 2.0 + streams / 500
    results = await asyncio.gather(
        *(_one_stream(url, audio[i % len(audio)], t0, lags, late) for i in range(streams))
    )
    errors: dict[str, int] = {}
    for r in results:
        if r["error"]:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    return {
        "received": sum(r["received"] for r in results),
        "errors": errors,
        "lag_p50_s": _percentile(lags, 0.5),
        "lag_p99_s": _percentile(lags, 0.99),
        "lag_max_s": max(lags, default=None),
        "client_late_frames": len(late),
        "client_late_p99_s": _percentile(late, 0.99),
    }


def _blocks_per_stream(seconds: float, block_samples: int, hop_samples: int) -> int:
    """Blocks in `seconds` of audio: as the clip pipeline cuts them (see service/features)."""
    n = int(seconds * RATE)
    return 0 if n < block_samples else (n - block_samples) // hop_samples + 1


def measure(args: argparse.Namespace) -> dict[str, Any]:
    raise_descriptor_limit()  # a socket per stream
    clips = _clips(args.data, 8)
    samples = int(args.seconds * RATE)
    # Each stream plays a real clip, looped to the stream's length, from an offset of its own.
    audio = [
        np.resize(np.roll(clip, 3000 * i), samples).astype("<i2").tobytes()
        for i, clip in enumerate(clips)
    ]
    manifest = json.loads((BUNDLE / "manifest.json").read_text())["features"]
    block = manifest["frames_per_block"] * manifest["hop_length"]
    hop = manifest["block_hop_frames"] * manifest["hop_length"]
    per_stream = _blocks_per_stream(args.seconds, block, hop)
    cpus = usable_cpus()
    result: dict[str, Any] = {
        "audio": "DCASE 2020 ToyConveyor normal test clips (first 8 by name, 10 s, 16 kHz "
        "mono PCM16), each looped to the stream's length from an offset of its own",
        "bundle": f"{BUNDLE.name} (the default bundle, copied to a temporary models folder)",
        "server": "auscult serve with default settings (one worker per usable CPU)",
        "usable_cpus": cpus,
        "machine": f"{os.cpu_count()}-core {platform.machine()}, {platform.python_version()}",
        "uptime_before": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "stream_seconds": args.seconds,
        "frame_seconds": FRAME_SECONDS,
        "blocks_per_stream": per_stream,
        "max_p99_lag_s": MAX_P99_LAG_S,
    }
    levels = []
    broke: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory() as work:
        models = Path(work) / "models"
        shutil.copytree(BUNDLE, models / BUNDLE.name)
        port = args.port or free_port()
        with serving(models, port, {"AUSCULT_RELOAD_POLL_SECONDS": "0"}) as url:
            pid = server_pid(port)
            ws_url = url.replace("http://", "ws://") + f"/v1/models/{BUNDLE.name}/stream"
            asyncio.run(_every_worker_ready(ws_url, cpus))
            for streams in [int(n) for n in args.levels.split(",")]:
                load_before = os.getloadavg()[0]
                cpu_before, wall_before = process_tree_cpu(pid), time.perf_counter()
                with HealthProbe(url) as probe, asyncio.Runner(loop_factory=new_event_loop) as run:
                    level = run.run(_level(ws_url, streams, audio))
                wall = time.perf_counter() - wall_before
                cpu = (process_tree_cpu(pid) - cpu_before) / wall
                expected = streams * per_stream
                cpu_per_stream_s = (cpu * wall) / (streams * args.seconds)
                level = {
                    "streams": streams,
                    "expected_blocks": expected,
                    "lost_blocks": expected - level["received"],
                    **level,
                    "server_cpu_cores": cpu,
                    "server_cpu_share": cpu / cpus,
                    # CPU the server spent per second of one stream's audio, and the streams
                    # that would fill every usable CPU at that cost: the capacity this level
                    # points at, whatever else ran on the machine meanwhile.
                    "server_cpu_ms_per_stream_second": 1e3 * cpu_per_stream_s,
                    "streams_at_full_cpu": cpus / cpu_per_stream_s,
                    "healthz_p50_s": _percentile(probe.latencies, 0.5),
                    "healthz_p99_s": _percentile(probe.latencies, 0.99),
                    "load_before": load_before,
                    "load_after": os.getloadavg()[0],
                }
                level["verdict"] = _verdict(level)
                levels.append(level)
                print(json.dumps(level), flush=True)
                if level["verdict"] != "held":
                    broke = level
                    break
    held = [lv["streams"] for lv in levels if lv["verdict"] == "held"]
    result |= {
        "levels": levels,
        "most_streams_held": max(held, default=0),
        "broke_at": broke["streams"] if broke else None,
        "what_broke_first": _first_cause(broke, cpus) if broke else None,
        "uptime_after": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }
    return result


def _verdict(level: dict[str, Any]) -> str:
    if level["lost_blocks"] > 0 or level["errors"]:
        return "blocks lost"
    if (level["lag_p99_s"] or 0.0) > MAX_P99_LAG_S:
        return "lag over 1 s"
    return "held"


def _first_cause(level: dict[str, Any], cpus: int) -> str:
    """The first limit the level's figures point at, in the order it would bind."""
    if any(code in level["errors"] for code in ("too_many_streams", "busy")):
        return f"a server limit refused streams: {level['errors']}"
    late = level["client_late_p99_s"] or 0.0
    # The load average before the level counts only what ran before it: over twice the CPUs,
    # other work held them; otherwise a late load generator competed with the server alone.
    if level["load_before"] > 2 * cpus and (late > 0.2 or level["server_cpu_share"] < 0.75):
        return (
            "the machine: other processes held the CPUs (load average "
            f"{level['load_before']:.1f} on {cpus} CPUs), so neither the load generator "
            f"(frames sent up to {late:.1f} s late at p99) nor "
            f"the server ({level['server_cpu_cores']:.2f} cores used) got the CPU they needed"
        )
    if late > 0.2:
        return (
            f"the CPUs, shared by the server and the load generator: the server used "
            f"{level['server_cpu_cores']:.2f} of {cpus} cores and the load generator, on the "
            f"same cores, sent frames up to {late:.2f} s late at p99"
        )
    if level["server_cpu_share"] > 0.9:
        return f"CPU: the server used {level['server_cpu_cores']:.2f} cores"
    if (level["healthz_p99_s"] or 0.0) > 0.2:
        return "the server's event loop: /healthz p99 over 200 ms"
    return "none of CPU, event loop or limits stood out; see the figures"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--levels", default="200,400,600,800,1000,1200")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per stream")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = measure(args)
    write_output(args.output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

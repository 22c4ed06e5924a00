"""A long fuzz run against one real `auscult serve`: generated clips (valid, damaged, forged
headers, random bytes) to /score, sensor bodies to /windows, and WebSocket sessions (audio
streams, and sensor streams driven lock-step). Counts status codes, 5xx, hangs (no answer
within the per-request timeout) and the server's RSS before and after; every case is
reproducible from the seed and its index (`--replay KIND:INDEX` writes its bytes).

    nice -n 10 python -m benchmarks.fuzz_service --clips 20000 --sessions 2000 --bodies 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from benchmarks.hardening_payloads import (
    AUDIO_MODEL,
    PROJECT_ROOT,
    RESULTS,
    WINDOWS_CHANNELS,
    WINDOWS_MODEL,
    RssWatch,
    fresh_server,
    machine,
    make_models,
    replace_doc_section,
    rss_mb,
)
from tests.server import ServeProcess
from tests.service.fuzz.forge import encode, nested_json, patch_flac_streaminfo, rows_json

KINDS = {"clip": 1, "body": 2, "audio_session": 3, "sensor_session": 4}
EDGE_RATES = [
    0,
    1,
    7,
    999,
    7999,
    8000,
    8001,
    11025,
    16000,
    44099,
    48000,
    96000,
    191999,
    192000,
    192001,
    383999,
    384000,
    1_000_003,
    15_000_001,
    2**31 - 1,
    2**32 - 1,
]
COMMON_RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000, 192000]
SLOW_S = 5.0
EXAMPLES_KEPT = 25
WINDOW = 100  # the window of the windows bundle make_models writes


def _rng(seed: int, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, KINDS[kind], index])


# --- generated cases ------------------------------------------------------------------------


def _valid_clip(rng: np.random.Generator) -> tuple[bytes, str]:
    fmt = "FLAC" if rng.random() < 0.3 else "WAV"
    subtypes = (
        ["PCM_16", "PCM_24"]
        if fmt == "FLAC"
        else ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]
    )
    subtype = str(rng.choice(subtypes))
    rate = int(rng.choice(COMMON_RATES)) if rng.random() < 0.7 else int(rng.integers(8000, 192001))
    if fmt == "FLAC" and rate > 65535:
        rate -= rate % 10  # libFLAC encodes rates above 65,535 Hz only in steps of 10 Hz
    channels = int(rng.choice([1, 1, 1, 2, 2, 4, 8]))
    seconds = float(rng.uniform(0.2, 3.0))
    frames = max(1, min(int(seconds * rate), 120_000 // channels))  # at most 1 MB of DOUBLE
    scale = float(rng.choice([0.1, 0.1, 0.5, 1.0, 1e-6, 0.0, 1e19]))
    samples = (scale * rng.standard_normal((frames, channels))).astype(np.float32)
    if not subtype.startswith(("FLOAT", "DOUBLE")):
        samples = np.clip(samples, -1.0, 1.0)
    return encode(samples, rate, fmt=fmt, subtype=subtype), fmt


def _mutate(data: bytes, fmt: str, rng: np.random.Generator) -> bytes:
    for _ in range(int(rng.integers(1, 4))):
        what = rng.integers(0, 6)
        if what == 0 and fmt == "WAV" and len(data) >= 44:  # a header field
            offset, width = [(24, 4), (22, 2), (34, 2), (40, 4), (32, 2), (20, 2), (4, 4)][
                int(rng.integers(0, 7))
            ]
            value = (
                int(rng.choice(EDGE_RATES)) if rng.random() < 0.5 else int(rng.integers(0, 2**32))
            )
            mask = (1 << (8 * width)) - 1
            data = data[:offset] + (value & mask).to_bytes(width, "little") + data[offset + width :]
        elif what == 0 and fmt == "FLAC":
            choice = int(rng.integers(0, 3))
            data = patch_flac_streaminfo(
                data,
                rate=int(rng.integers(0, 2**20)) if choice == 0 else None,
                total_samples=int(rng.integers(0, 2**36)) if choice == 1 else None,
                channels=int(rng.integers(1, 9)) if choice == 2 else None,
            )
        elif what == 1 and data:
            position = int(rng.integers(0, len(data)))
            data = (
                data[:position]
                + bytes([data[position] ^ int(rng.integers(1, 256))])
                + data[position + 1 :]
            )
        elif what == 2:
            data = data[: int(rng.integers(0, len(data) + 1))]
        elif what == 3:
            position = int(rng.integers(0, len(data) + 1))
            data = data[:position] + rng.bytes(int(rng.integers(1, 64))) + data[position:]
        elif what == 4 and len(data) > 8:
            start = int(rng.integers(0, len(data) - 4))
            data = data[:start] + data[start : start + 4096] * 2 + data[start:]
        else:
            data = data + rng.bytes(int(rng.integers(1, 1024)))
    return data[: 1024 * 1024]


def _forged_wav(rng: np.random.Generator) -> bytes:
    n = int(rng.integers(0, 8192))
    fmt = struct.pack(
        "<HHIIHH",
        int(rng.choice([1, 3, 0, 2, 0xFFFE])),
        int(rng.choice([0, 1, 2, 8, 255, 65535])),
        int(rng.choice(EDGE_RATES)) if rng.random() < 0.6 else int(rng.integers(0, 2**32)),
        int(rng.integers(0, 2**32)),
        int(rng.integers(0, 2**16)),
        int(rng.choice([0, 7, 8, 16, 24, 32, 64])),
    )
    size = (
        n if rng.random() < 0.5 else int(rng.choice([0, 0xFFFFFFFF, int(rng.integers(0, 2**32))]))
    )
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size)
    body += rng.bytes(n)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def clip_case(seed: int, index: int) -> tuple[bytes, str, str]:
    """(body, content type, family) of generated clip `index`."""
    rng = _rng(seed, "clip", index)
    family = str(rng.choice(["valid", "valid", "mutated", "mutated", "forged", "bytes"]))
    if family == "forged":
        body, media = _forged_wav(rng), "audio/wav"
    elif family == "bytes":
        prefix = [b"", b"RIFF", b"fLaC", b"RIFF\x00\x00\x00\x00WAVEfmt "][int(rng.integers(0, 4))]
        body, media = prefix + rng.bytes(int(rng.integers(0, 4096))), "audio/wav"
    else:
        body, fmt = _valid_clip(rng)
        media = "audio/flac" if fmt == "FLAC" else "audio/wav"
        if family == "mutated":
            body = _mutate(body, fmt, rng)
    roll = rng.random()
    if roll < 0.05:
        return _multipart(body), "multipart/form-data; boundary=fuzzbound", family + "+form"
    if roll < 0.08:
        return body, str(rng.choice(["text/plain", "application/json", ""])), family + "+type"
    return body, media, family


def _multipart(file: bytes) -> bytes:
    return (
        b'--fuzzbound\r\nContent-Disposition: form-data; name="file"; filename="c.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + file + b"\r\n--fuzzbound--\r\n"
    )


def _json_value(rng: np.random.Generator, depth: int = 0) -> Any:
    roll = rng.integers(0, 9 if depth < 4 else 5)
    if roll == 0:
        return None
    if roll == 1:
        return bool(rng.integers(0, 2))
    if roll == 2:
        return float(rng.choice([0.0, 1.5, -1e200, 1e19, math.nan, math.inf, 1e-320]))
    if roll == 3:
        return int(rng.choice([0, 1, -1, 2**63, 10**30]))
    if roll == 4:
        return "".join(chr(int(c)) for c in rng.integers(32, 0x2FF, int(rng.integers(0, 6))))
    if roll < 7:
        return [_json_value(rng, depth + 1) for _ in range(int(rng.integers(0, 5)))]
    keys = ["samples", "channels", "type", "x"]
    return {str(rng.choice(keys)): _json_value(rng, depth + 1) for _ in range(rng.integers(0, 3))}


def _rows(rng: np.random.Generator, steps: int, width: int) -> list[list[float]]:
    scale = float(rng.choice([1.0, 1.0, 1.0, 1.0, 1.0, 1e-30, 1e19, 1e200]))
    rows: list[list[float]] = (scale * rng.standard_normal((steps, width))).round(4).tolist()
    return rows


def body_case(seed: int, index: int) -> tuple[bytes, str]:
    """(body, family) of generated sensor body `index`."""
    rng = _rng(seed, "body", index)
    family = str(
        rng.choice(["series", "series", "series", "named", "json", "deep", "digits", "tokens"])
    )
    width = WINDOWS_CHANNELS if rng.random() < 0.85 else int(rng.integers(0, 7))
    steps = int(rng.integers(0, 2000))
    if family == "series":
        return json.dumps(_rows(rng, steps, width)).encode(), family
    if family == "named":
        names = [f"sensor_{c}" for c in rng.permutation(WINDOWS_CHANNELS)]
        body = {"samples": _rows(rng, steps, width), "channels": names}
        return json.dumps(body).encode(), family
    if family == "json":
        return json.dumps(_json_value(rng), allow_nan=True).encode(), family
    if family == "deep":
        return nested_json(int(rng.integers(100, 200_000))), family
    if family == "digits":
        return rows_json(
            int(rng.integers(1, 300)), width, "9" * int(rng.integers(20, 5000))
        ), family
    token = str(rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "1e200", "-0", "1e-400"]))
    return rows_json(int(rng.integers(1, 400)), width, token), family


def audio_session_case(seed: int, index: int) -> tuple[dict[str, Any], list[bytes], bool]:
    """(start message, binary frames, whether the client ends with stop) of session `index`."""
    rng = _rng(seed, "audio_session", index)
    # Mostly starts the server accepts, so the frames get exercised; a tenth of each field odd.
    encoding = str(rng.choice(["pcm_s16le", "f32le"])) if rng.random() < 0.9 else "u8"
    start: dict[str, Any] = {
        "type": "start",
        "sample_rate": int(rng.choice(COMMON_RATES))
        if rng.random() < 0.8
        else int(rng.choice(EDGE_RATES)),
        "encoding": encoding,
        "channels": int(rng.choice([1, 1, 2, 8]))
        if rng.random() < 0.9
        else int(rng.choice([0, 33, -1])),
    }
    frames = []
    for _ in range(int(rng.integers(0, 10))):
        n = int(rng.integers(0, 20_000))
        roll = rng.random()  # most frames are audio; a frame of raw bytes usually ends it
        if roll < 0.85 and encoding == "f32le":
            value = float(rng.choice([0.1, 0.1, 0.1, 1e19, math.nan, math.inf]))
            frames.append((value * rng.standard_normal(n)).astype("<f4").tobytes())
        elif roll < 0.85:
            frames.append(rng.integers(-3000, 3000, n).astype("<i2").tobytes())
        else:
            frames.append(rng.bytes(int(rng.integers(0, 4096))))
    return start, frames, bool(rng.random() < 0.85)


def sensor_session_case(seed: int, index: int) -> tuple[dict[str, Any], list[tuple[str, bool]]]:
    """(start message, text frames each with whether it is a valid samples frame)."""
    rng = _rng(seed, "sensor_session", index)
    start: dict[str, Any] = {"type": "start"}
    if rng.random() < 0.2:
        start["channels"] = [f"sensor_{c}" for c in rng.permutation(WINDOWS_CHANNELS)]
    frames: list[tuple[str, bool]] = []
    for _ in range(int(rng.integers(1, 8))):
        roll = rng.random()
        if roll < 0.88:  # most frames are rows; any other frame ends the session
            rows = _rows(rng, int(rng.integers(0, 300)), WINDOWS_CHANNELS)
            valid = all(math.isfinite(v) and abs(v) < 1e18 for row in rows for v in row)
            frames.append((json.dumps({"type": "samples", "samples": rows}), valid))
        elif roll < 0.96:
            frames.append((json.dumps(_json_value(rng), allow_nan=True), False))
        else:
            inner = nested_json(int(rng.integers(100, 100_000))).decode()
            frames.append(('{"type": "samples", "samples": ' + inner + "}", False))
    return start, frames


# --- running them ---------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts of one kind of case, with a few examples of each problem."""

    total: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    families: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    def add(
        self,
        outcome: str,
        family: str,
        elapsed: float,
        problem: str | None,
        example: dict[str, Any],
    ) -> None:
        self.total += 1
        self.outcomes[outcome] += 1
        self.families[family] += 1
        self.seconds.append(elapsed)
        if problem is not None:
            self.problems[problem] += 1
            kept = self.examples.setdefault(problem, [])
            if len(kept) < EXAMPLES_KEPT:
                kept.append(example)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.seconds) or [0.0]
        return {
            "total": self.total,
            "outcomes": dict(self.outcomes.most_common()),
            "families": dict(self.families.most_common()),
            "problems": dict(self.problems),
            "server_errors": self.problems.get("server_error", 0),
            "hangs": self.problems.get("hang", 0) + self.problems.get("unanswered_frame", 0),
            "p50_s": round(ordered[len(ordered) // 2], 4),
            "p99_s": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 4),
            "max_s": round(ordered[-1], 3),
            "examples": self.examples,
        }


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _judge_http(response: httpx.Response) -> str | None:
    """The problem with an HTTP answer, if any."""
    if response.status_code >= 500:
        return "server_error"
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            return "error_not_json"
        return (
            None
            if isinstance(body, dict) and isinstance(body.get("detail"), str)
            else ("error_without_detail")
        )
    verdict = response.json()
    values = [verdict.get("score", 0.0), verdict.get("max_ratio", 0.0)]
    values += verdict.get("scores", []) + [b["score"] for b in verdict.get("blocks", [])]
    return None if all(_finite(v) for v in values) else "non_finite_verdict"


def _post(
    client: httpx.Client, path: str, body: bytes, media: str
) -> tuple[str, str | None, float]:
    began = time.monotonic()
    try:
        response = client.post(path, content=body, headers={"content-type": media})
    except httpx.TimeoutException:
        return "timeout", "hang", time.monotonic() - began
    except httpx.TransportError as exc:
        return type(exc).__name__, "connection_lost", time.monotonic() - began
    elapsed = time.monotonic() - began
    problem = _judge_http(response)
    if problem is None and elapsed > SLOW_S:
        problem = "slow"
    return str(response.status_code), problem, elapsed


class Runner:
    """Holds the server; restarts it (and counts the restart) if it dies or is killed."""

    def __init__(self, models: Path, log: Path, timeout_s: float, kill_mb: float) -> None:
        self.models = models
        self.log = log
        self.timeout_s = timeout_s
        self.kill_mb = kill_mb
        self.restarts: list[dict[str, Any]] = []
        self._context: Any = None
        self.server: ServeProcess | None = None
        self.watch: RssWatch | None = None

    def start(self) -> None:
        env = {"AUSCULT_WS_IDLE_TIMEOUT_SECONDS": "10", "AUSCULT_WS_MAX_CONNECTIONS": "64"}
        self._context = fresh_server(self.models, self.log, env)
        self.server = self._context.__enter__()
        self.watch = RssWatch(self.server.process.pid, self.kill_mb).__enter__()

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.__exit__()
        if self._context is not None:
            self._context.__exit__(None, None, None)

    def ensure_alive(self, during: str) -> None:
        assert self.server is not None
        assert self.watch is not None
        if self.server.process.poll() is None:
            return
        self.restarts.append(
            {
                "during": during,
                "exit": self.server.process.returncode,
                "killed_over_mb": self.kill_mb if self.watch.killed else None,
                "log_tail": self.server.log_text()[-600:],
            }
        )
        print(f"  server died during {during}; restarting", flush=True)
        self.stop()
        self.start()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


def run_http(
    runner: Runner,
    kind: str,
    count: int,
    seed: int,
    concurrency: int,
    make: Callable[[int], tuple[str, bytes, str, str]],
) -> Tally:
    """Send `count` generated bodies, `concurrency` at a time, in batches so a dead server is
    noticed and restarted between them."""
    tally = Tally()
    batch = 50 * concurrency
    for first in range(0, count, batch):
        with (
            httpx.Client(base_url=runner.url, timeout=runner.timeout_s) as client,
            ThreadPoolExecutor(concurrency) as pool,
        ):

            def one(index: int, client: httpx.Client = client) -> None:
                path, body, media, family = make(index)
                outcome, problem, elapsed = _post(client, path, body, media)
                tally.add(
                    outcome,
                    family,
                    elapsed,
                    problem,
                    {
                        "case": f"{kind}:{index}",
                        "family": family,
                        "bytes": len(body),
                        "content_type": media,
                        "outcome": outcome,
                        "seconds": round(elapsed, 2),
                    },
                )

            list(pool.map(one, range(first, min(count, first + batch))))
        runner.ensure_alive(f"{kind} {first}..{first + batch}")
        print(f"  {kind}: {min(count, first + batch)}/{count} {dict(tally.outcomes)}", flush=True)
    return tally


async def _read_until_close(
    ws: ClientConnection, timeout_s: float
) -> tuple[list[dict[str, Any]], int | None, bool]:
    """(messages, close code, hung) reading until the server closes."""
    messages: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout_s):
            async for text in ws:
                messages.append(json.loads(text))
    except TimeoutError:
        return messages, None, True
    except ConnectionClosed:
        pass
    return messages, ws.close_code, False


def _judge_messages(messages: list[dict[str, Any]], code: int | None) -> str | None:
    if code == 1011 or any(m.get("code") == "internal" for m in messages):
        return "server_error"
    for m in messages:
        if m.get("type") == "score" and not _finite(m.get("score")):
            return "non_finite_verdict"
        if m.get("type") == "steps" and not all(_finite(s) for s in m.get("scores", [])):
            return "non_finite_verdict"
    return None


async def _audio_session(
    url: str, seed: int, index: int, timeout_s: float
) -> tuple[str, str | None]:
    start, frames, stop = audio_session_case(seed, index)
    async with connect(
        f"{url}/v1/models/{AUDIO_MODEL}/stream", open_timeout=timeout_s, max_size=None, proxy=None
    ) as ws:
        try:
            await ws.send(json.dumps(start))
            for frame in frames:
                await ws.send(frame)
            if not stop:
                await ws.close()
                return "client_closed", None
            await ws.send(json.dumps({"type": "stop"}))
        except ConnectionClosed:
            pass
        messages, code, hung = await _read_until_close(ws, timeout_s)
    if hung:
        return "no_close", "hang"
    last = messages[-1] if messages else {}
    outcome = f"{code} {last.get('type')}{':' + last['code'] if 'code' in last else ''}"
    return outcome, _judge_messages(messages, code)


async def _sensor_session(
    url: str, seed: int, index: int, timeout_s: float, lockstep_s: float
) -> tuple[str, str | None]:
    start, frames = sensor_session_case(seed, index)
    problem: str | None = None
    answers: list[dict[str, Any]] = []
    async with connect(
        f"{url}/v1/models/{WINDOWS_MODEL}/stream", open_timeout=timeout_s, max_size=None, proxy=None
    ) as ws:
        await ws.send(json.dumps(start))
        json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        for text, _ in frames:
            try:
                await ws.send(text)
                answers.append(json.loads(await asyncio.wait_for(ws.recv(), lockstep_s)))
            except TimeoutError:
                problem = problem or "unanswered_frame"
                continue
            except ConnectionClosed:
                break
            if answers[-1].get("type") == "error":
                break
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"type": "stop"}))
        rest, code, hung = await _read_until_close(ws, timeout_s)
    if hung:
        return "no_close", "hang"
    messages = answers + rest
    last = messages[-1] if messages else {}
    outcome = f"{code} {last.get('type')}{':' + last['code'] if 'code' in last else ''}"
    problem = _judge_messages(messages, code) or problem
    if (
        problem is None
        and last.get("type") == "end"
        and all(valid for _, valid in frames)
        and last.get("steps_received", 0) >= WINDOW
        and last.get("steps_scored") != last.get("steps_received")
    ):
        problem = "steps_unscored_on_stop"
    return outcome, problem


async def _sessions(
    runner: Runner, count: int, seed: int, concurrency: int, timeout_s: float, lockstep_s: float
) -> tuple[Tally, Tally]:
    audio, sensor = Tally(), Tally()
    limit = asyncio.Semaphore(concurrency)
    ws_url = runner.url.replace("http://", "ws://")

    async def one(index: int) -> None:
        kind = "audio_session" if index % 2 == 0 else "sensor_session"
        tally = audio if kind == "audio_session" else sensor
        async with limit:
            began = time.monotonic()
            try:
                if kind == "audio_session":
                    outcome, problem = await _audio_session(ws_url, seed, index, timeout_s)
                else:
                    outcome, problem = await _sensor_session(
                        ws_url, seed, index, timeout_s, lockstep_s
                    )
            except (OSError, InvalidStatus, ConnectionClosed, TimeoutError) as exc:
                outcome, problem = type(exc).__name__, "connection_lost"
            elapsed = time.monotonic() - began
            tally.add(
                outcome,
                kind,
                elapsed,
                problem,
                {"case": f"{kind}:{index}", "outcome": outcome, "seconds": round(elapsed, 2)},
            )

    batch = 100
    for first in range(0, count, batch):
        await asyncio.gather(*(one(i) for i in range(first, min(count, first + batch))))
        runner.ensure_alive(f"sessions {first}..{first + batch}")
        ws_url = runner.url.replace("http://", "ws://")
        print(
            f"  sessions: {min(count, first + batch)}/{count} audio {dict(audio.problems)} "
            f"sensor {dict(sensor.problems)}",
            flush=True,
        )
    return audio, sensor


def _settled_rss(pid: int, seconds: float) -> float:
    time.sleep(seconds)
    return rss_mb(pid)


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="auscult-fuzz-") as tmp:
        runner = Runner(
            make_models(Path(tmp)), Path(tmp) / "server.log", args.timeout, args.kill_mb
        )
        runner.start()
        try:
            assert runner.server is not None
            first_pid = runner.server.process.pid
            httpx.post(
                f"{runner.url}/v1/models/{AUDIO_MODEL}/score",
                content=clip_case(args.seed, 0)[0],
                timeout=60,
            )
            rss_start = _settled_rss(first_pid, 1.0)

            def clip(index: int) -> tuple[str, bytes, str, str]:
                body, media, family = clip_case(args.seed, index)
                return f"/v1/models/{AUDIO_MODEL}/score", body, media, family

            def body(index: int) -> tuple[str, bytes, str, str]:
                data, family = body_case(args.seed, index)
                return f"/v1/models/{WINDOWS_MODEL}/windows", data, "application/json", family

            clips = run_http(runner, "clip", args.clips, args.seed, args.concurrency, clip)
            bodies = run_http(runner, "body", args.bodies, args.seed, args.concurrency, body)
            audio, sensor = asyncio.run(
                _sessions(
                    runner,
                    args.sessions,
                    args.seed,
                    args.ws_concurrency,
                    args.timeout,
                    args.lockstep_timeout,
                )
            )
            assert runner.server is not None
            same_process = runner.server.process.pid == first_pid
            rss_end = _settled_rss(runner.server.process.pid, args.settle)
        finally:
            runner.stop()
    parts = {
        "clips": clips,
        "sensor_bodies": bodies,
        "audio_sessions": audio,
        "sensor_sessions": sensor,
    }
    summaries = {name: tally.summary() for name, tally in parts.items()}
    return {
        "benchmark": "fuzz_service",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "nice -n 10 python -m benchmarks.fuzz_service " + " ".join(sys.argv[1:]),
        "seed": args.seed,
        "models": "tests/bundle_factory.py: small audio bundle (16 kHz) and a 3-channel windows "
        "bundle (window 100)",
        "timeout_s": args.timeout,
        "lockstep_timeout_s": args.lockstep_timeout,
        "machine": {**machine(), "load_average_before": load_before},
        "wall_s": round(time.monotonic() - began, 1),
        "totals": {
            "cases": sum(t.total for t in parts.values()),
            "server_errors": sum(s["server_errors"] for s in summaries.values()),
            "hangs": sum(s["hangs"] for s in summaries.values()),
            "server_restarts": len(runner.restarts),
        },
        "rss_mb": {
            "start": round(rss_start, 1),
            "end": round(rss_end, 1),
            "growth": round(rss_end - rss_start, 1),
            "same_process": same_process,
            "settle_s": args.settle,
        },
        "restarts": runner.restarts,
        **summaries,
    }


def replay(case: str, seed: int) -> bytes:
    kind, _, index = case.partition(":")
    if kind == "clip":
        return clip_case(seed, int(index))[0]
    if kind == "body":
        return body_case(seed, int(index))[0]
    if kind == "audio_session":
        start, frames, stop = audio_session_case(seed, int(index))
        return json.dumps(
            {"start": start, "frame_bytes": [len(f) for f in frames], "stop": stop}
        ).encode()
    if kind == "sensor_session":
        start, texts = sensor_session_case(seed, int(index))
        return json.dumps({"start": start, "frames": [t for t, _ in texts]}).encode()
    raise SystemExit(f"unknown case kind {kind!r}")


def render(report: dict[str, Any], source: str) -> str:
    """The fuzz run's counts, for docs/HARDENING.md."""
    m, totals, rss = report["machine"], report["totals"], report["rss_mb"]
    lines = [
        f"`{report['command']}` ({source}; {report['when']}; source tree {m['source']}; seed "
        f"{report['seed']}; {m['cpus']} CPUs, load average {m['load_average_before'][0]:.1f} "
        f"before and {m['load_average'][0]:.1f} after, nice {m['nice']}; {report['wall_s']:.0f} s)."
        f" Hang = no answer within {report['timeout_s']:g} s, or a sensor frame unanswered for "
        f"{report['lockstep_timeout_s']:g} s.",
        "",
        f"**{totals['cases']} cases: {totals['server_errors']} server errors, {totals['hangs']} "
        f"hangs, {totals['server_restarts']} server restarts; RSS {rss['start']:.0f} MB at the "
        f"start, {rss['end']:.0f} MB {rss['settle_s']:g} s after the end ({rss['growth']:+.0f} MB"
        f"{'' if rss['same_process'] else ', across a restart'}).**",
        "",
        "| part | cases | answers | problems | p50 / p99 / max (s) |",
        "|---|---:|---|---|---|",
    ]
    for part in ("clips", "sensor_bodies", "audio_sessions", "sensor_sessions"):
        s = report[part]
        answers = ", ".join(f"{k}: {n}" for k, n in s["outcomes"].items())
        problems = ", ".join(f"{k}: {n}" for k, n in s["problems"].items()) or "none"
        lines.append(
            f"| {part.replace('_', ' ')} | {s['total']} | {answers} | {problems} | "
            f"{s['p50_s']:.3f} / {s['p99_s']:.3f} / {s['max_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=20_000)
    parser.add_argument("--bodies", type=int, default=2_000, help="sensor bodies to /windows")
    parser.add_argument(
        "--sessions", type=int, default=2_000, help="WebSocket sessions, half audio and half sensor"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=4, help="HTTP requests in flight")
    parser.add_argument("--ws-concurrency", type=int, default=16, help="sessions open at once")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds an answer may take before it counts as a hang",
    )
    parser.add_argument(
        "--lockstep-timeout",
        type=float,
        default=5.0,
        help="seconds a sensor frame may wait for its answer",
    )
    parser.add_argument(
        "--kill-mb", type=float, default=3000.0, help="kill (and restart) the server past this RSS"
    )
    parser.add_argument(
        "--settle", type=float, default=5.0, help="idle seconds before the final RSS is read"
    )
    parser.add_argument("--label", default="latest", help="results go to fuzz_LABEL.json")
    parser.add_argument("--replay", metavar="KIND:INDEX", help="write that case to stdout")
    parser.add_argument(
        "--doc", action="store_true", help="also write the counts into docs/HARDENING.md"
    )
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="only write this result's counts into the doc"
    )
    args = parser.parse_args(argv)
    if args.replay:
        sys.stdout.buffer.write(replay(args.replay, args.seed))
        return 0
    if args.render:
        source = str(args.render.resolve().relative_to(PROJECT_ROOT))
        replace_doc_section("fuzz", render(json.loads(args.render.read_text()), source))
        return 0
    report = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"fuzz_{args.label}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    if args.doc:
        replace_doc_section("fuzz", render(report, str(out.relative_to(PROJECT_ROOT))))
    print(json.dumps({k: report[k] for k in ("totals", "rss_mb", "wall_s")}))
    print(f"wrote {out}")
    totals = report["totals"]
    return 0 if not (totals["server_errors"] or totals["hangs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())

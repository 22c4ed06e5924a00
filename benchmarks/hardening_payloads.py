"""What the worst requests of at most 1 MB cost a real `auscult serve`: header lies about the
sample rate and frame count, FLAC decompression bombs, extreme and odd rates, deeply nested and
huge-number JSON, non-finite values, slow uploads. Each payload goes to a fresh server process;
its peak RSS above idle (VmHWM after resetting it) and its CPU seconds (utime + stime) for that
one request are written to benchmarks/results/hardening_<label>.json.

    nice -n 10 python -m benchmarks.hardening_payloads [--only NAME ...] [--label LABEL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from service.audio.resample import resampling_factors
from service.config import DEFAULT_MAX_CLIP_SECONDS, DEFAULT_MAX_DECODED_SAMPLES, Settings
from tests.bundle_factory import make_windows_bundle, sensor_series
from tests.server import ServeProcess, serve_process
from tests.service.clips import small_audio_bundle
from tests.service.fuzz.forge import (
    UNKNOWN_SIZE,
    WAVE_FORMAT_IEEE_FLOAT,
    encode,
    nested_json,
    noise,
    patch_flac_streaminfo,
    pcm16,
    rows_json,
    silent_flac,
    wav,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT_ROOT / "benchmarks" / "results"
AUDIO_MODEL = "audio"
WINDOWS_MODEL = "windows"
WINDOWS_CHANNELS = 3
MAX_PAYLOAD_BYTES = 1024 * 1024
TARGET_PEAK_MB = 300.0
TARGET_CPU_S = 2.0
# The server is killed once its RSS passes this: every payload above the target fails anyway,
# and a few tried here used to take 5 GB.
DEFAULT_KILL_MB = 3000.0
DEFAULT_TIMEOUT_S = 60.0


def _slow_budget_s() -> float:
    """How long a slow client is given before it counts as held: the service's own header and
    body deadlines (when it has them) plus 10 s."""
    fields = Settings.model_fields
    names = ("header_timeout_seconds", "body_timeout_seconds")
    deadlines = [float(fields[n].default) for n in names if n in fields]
    return max(deadlines, default=30.0) + 10.0


SLOW_BUDGET_S = _slow_budget_s()
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

Kind = Literal[
    "score",
    "score_parallel",
    "score_sequence",
    "windows",
    "audio_stream",
    "sensor_stream",
    "slow_body",
    "slow_headers",
    "slowloris",
]


@dataclass(frozen=True)
class Payload:
    name: str
    what: str
    kind: Kind
    body: bytes = b""
    content_type: str = "audio/wav"
    start: dict[str, Any] = field(default_factory=dict)  # a stream's start message fields
    # score_parallel sends `body` this many times at once; score_sequence sends `bodies` in turn.
    copies: int = 1
    bodies: tuple[bytes, ...] = ()

    @property
    def requests(self) -> int:
        return len(self.bodies) or self.copies

    @property
    def largest(self) -> int:
        """Bytes of the largest single request."""
        return max([len(self.body), *(len(b) for b in self.bodies)])


def _score(name: str, what: str, body: bytes, content_type: str = "audio/wav") -> Payload:
    return Payload(name, what, "score", body, content_type)


def _windows(name: str, what: str, body: bytes) -> Payload:
    return Payload(name, what, "windows", body, "application/json")


def _largest_silent_flac(rate: int, channels: int) -> tuple[bytes, float]:
    """The longest silent FLAC (whole minutes) that still fits in MAX_PAYLOAD_BYTES."""
    per_hour = len(silent_flac(3600, rate=rate, channels=channels))
    seconds = 60 * int(3600 * 0.97 * MAX_PAYLOAD_BYTES / per_hour / 60)
    return silent_flac(seconds, rate=rate, channels=channels), seconds


# Primes just under 192 kHz: refused since the resampling factor limit (each would need a
# filter of millions of taps to 16 kHz); kept to show the refusal is cheap.
_REFUSED_RATES = (
    191_999,
    191_977,
    191_969,
    191_953,
    191_929,
    191_911,
    191_903,
    191_899,
    191_861,
    191_837,
    191_833,
    191_831,
)
# The worst rates the default limits admit against the bundles' 16 kHz: 8 x an odd k not
# divisible by 5 reduces to the factor k, so these twelve need the twelve longest filters
# under AUSCULT_MAX_RESAMPLE_FACTOR (19,999 ... 19,971: about 400 K taps each).
_WORST_ADMITTED_RATES = tuple(8 * k for k in range(19_999, 19_900, -1) if k % 2 and k % 5)[:12]
# The other two named in the table: factor 19,999 (the largest admitted) and 19,199 (the
# largest at a rate near the 192 kHz ceiling).
WORST_ADMITTED_RATE = 159_992
WORST_ADMITTED_RATE_NEAR_MAX = 191_990
# The lowest-rate worst case: factor 16,000 upward, and 1 MB of 8-bit samples lasts 131 s.
WORST_ADMITTED_LOW_RATE = 8_001


def _factor(rate: int) -> int:
    """The larger reduced resampling factor from `rate` to the bundle's 16 kHz."""
    return max(resampling_factors(rate, 16000))


def _valid_rows_json(size: int) -> bytes:
    """As many rows of a normal sensor series as fit in `size` bytes of JSON."""
    rows = sensor_series(size // 16, channels=WINDOWS_CHANNELS).round(3).tolist()
    text = json.dumps(rows, separators=(",", ":")).encode()[: size - 1]
    return text.rsplit(b"],", 1)[0] + b"]]"


def payloads() -> list[Payload]:
    """Every payload, each at most 1 MB."""
    one_sample = pcm16(noise(1))
    second = pcm16(noise(16000))
    flac_1s = encode(noise(16000), 16000, fmt="FLAC")
    bomb, bomb_s = _largest_silent_flac(16000, 1)
    f32_loud = np.full(16000, 1e19, dtype="<f4").tobytes()
    f32_nan = np.full(16000, np.nan, dtype="<f4").tobytes()
    big_series = _valid_rows_json(MAX_PAYLOAD_BYTES)
    series = sensor_series(300, channels=WINDOWS_CHANNELS, seed=3)
    frame_rows = json.dumps(series.tolist())
    items = [
        _score(
            "wav_rate_1000003",
            "46-byte WAV, header says 1,000,003 Hz (a prime)",
            wav(one_sample, rate=1_000_003),
        ),
        _score(
            "wav_rate_15000001",
            "46-byte WAV, header says 15,000,001 Hz",
            wav(one_sample, rate=15_000_001),
        ),
        _score(
            "wav_rate_2147483647",
            "46-byte WAV, header says 2^31-1 Hz",
            wav(one_sample, rate=2_147_483_647),
        ),
        _score(
            "wav_rate_4294967295",
            "46-byte WAV, header says 2^32-1 Hz",
            wav(one_sample, rate=0xFFFFFFFF),
        ),
        _score("wav_rate_0", "1 s of samples, header says 0 Hz", wav(second, rate=0)),
        _score(
            "wav_rate_1", "1 s of samples, header says 1 Hz (16,000 s long)", wav(second, rate=1)
        ),
        _score(
            "wav_rate_1000003_1mb",
            "1 MB of samples at a declared 1,000,003 Hz",
            wav(pcm16(noise(MAX_PAYLOAD_BYTES // 2 - 32)), rate=1_000_003),
        ),
        _score(
            "wav_rate_191999_1mb",
            "1 MB of samples at 191,999 Hz (prime: factor 191,999, refused)",
            wav(pcm16(noise(MAX_PAYLOAD_BYTES // 2 - 32)), rate=191_999),
        ),
        Payload(
            "sequence_12_refused_rates",
            "12 one-second clips, each at another prime rate near 192 kHz (all refused)",
            "score_sequence",
            bodies=tuple(wav(pcm16(noise(rate, seed=rate)), rate=rate) for rate in _REFUSED_RATES),
        ),
        _score(
            f"wav_rate_{WORST_ADMITTED_RATE}_1mb",
            f"1 MB of samples at {WORST_ADMITTED_RATE:,} Hz (factor "
            f"{_factor(WORST_ADMITTED_RATE):,}: the longest filter admitted)",
            wav(pcm16(noise(MAX_PAYLOAD_BYTES // 2 - 32)), rate=WORST_ADMITTED_RATE),
        ),
        _score(
            f"wav_rate_{WORST_ADMITTED_RATE_NEAR_MAX}_1mb",
            f"1 MB of samples at {WORST_ADMITTED_RATE_NEAR_MAX:,} Hz (factor "
            f"{_factor(WORST_ADMITTED_RATE_NEAR_MAX):,}, near the 192 kHz ceiling)",
            wav(pcm16(noise(MAX_PAYLOAD_BYTES // 2 - 32)), rate=WORST_ADMITTED_RATE_NEAR_MAX),
        ),
        _score(
            f"wav_8bit_{WORST_ADMITTED_LOW_RATE}_1mb",
            f"1 MB of 8-bit samples at {WORST_ADMITTED_LOW_RATE:,} Hz (factor "
            f"{_factor(WORST_ADMITTED_LOW_RATE):,} upward, 131 s of audio)",
            wav(
                (noise(MAX_PAYLOAD_BYTES - 44) * 127 + 128).astype(np.uint8).tobytes(),
                rate=WORST_ADMITTED_LOW_RATE,
                bits=8,
            ),
        ),
        Payload(
            f"parallel_{WORST_ADMITTED_RATE}_x2",
            f"two of wav_rate_{WORST_ADMITTED_RATE}_1mb at once (one per default scoring thread)",
            "score_parallel",
            wav(pcm16(noise(MAX_PAYLOAD_BYTES // 2 - 32)), rate=WORST_ADMITTED_RATE),
            copies=2,
        ),
        Payload(
            "sequence_12_worst_admitted_rates",
            f"12 one-second clips at the 12 admitted rates with the longest filters "
            f"({_WORST_ADMITTED_RATES[-1]:,} to {_WORST_ADMITTED_RATES[0]:,} Hz)",
            "score_sequence",
            bodies=tuple(
                wav(pcm16(noise(rate, seed=rate)), rate=rate) for rate in _WORST_ADMITTED_RATES
            ),
        ),
        _score(
            "wav_rate_44099_1mb",
            "1 MB of samples at 44,099 Hz (factor 44,099, refused)",
            wav(pcm16(noise(MAX_PAYLOAD_BYTES // 2 - 32)), rate=44_099),
        ),
        _score(
            "wav_rate_383999_1mb",
            "1 MB of samples at 383,999 Hz (above the 192 kHz ceiling)",
            wav(pcm16(noise(MAX_PAYLOAD_BYTES // 2 - 32)), rate=383_999),
        ),
        _score(
            "wav_8ch_96k_1mb",
            "1 MB of 8-channel 96 kHz 16-bit noise",
            wav(pcm16(noise(MAX_PAYLOAD_BYTES // 2 - 32)), rate=96_000, channels=8),
        ),
        _score(
            "wav_unknown_data_size",
            "1 s WAV whose data chunk size is 0xFFFFFFFF",
            wav(second, rate=16000, data_size=UNKNOWN_SIZE),
        ),
        _score(
            "wav_65535_channels",
            "1 MB WAV whose header says 65,535 channels",
            wav(pcm16(noise(MAX_PAYLOAD_BYTES // 2 - 32)), rate=16000, channels=65535),
        ),
        _score(
            "wav_block_align_1",
            "1 s WAV, 16-bit stereo with block align 1",
            wav(second, rate=16000, channels=2, block_align=1),
        ),
        _score(
            "wav_float_1e19",
            "1 s float WAV of finite samples 1e19",
            wav(f32_loud, rate=16000, bits=32, format_tag=WAVE_FORMAT_IEEE_FLOAT),
        ),
        _score(
            "wav_float_nan",
            "1 s float WAV of NaN",
            wav(f32_nan, rate=16000, bits=32, format_tag=WAVE_FORMAT_IEEE_FLOAT),
        ),
        _score(
            "flac_silence_bomb",
            f"{len(bomb) // 1024} KB FLAC of {bomb_s / 3600:.1f} h of silence, 16 kHz mono",
            bomb,
            "audio/flac",
        ),
        _score(
            "flac_8ch_96k_600s",
            "FLAC of 600 s of silence, 8 channels, 96 kHz",
            silent_flac(600, rate=96_000, channels=8),
            "audio/flac",
        ),
        _score(
            "flac_at_every_limit",
            f"FLAC of {DEFAULT_MAX_CLIP_SECONDS:g} s of silence, mono 48 kHz: as long and as many "
            "decoded samples as the defaults admit",
            silent_flac(DEFAULT_MAX_DECODED_SAMPLES / 48_000, rate=48_000),
            "audio/flac",
        ),
        _score(
            "flac_frames_lie",
            "1 s FLAC whose STREAMINFO declares 2^36-1 frames",
            patch_flac_streaminfo(flac_1s, total_samples=(1 << 36) - 1),
            "audio/flac",
        ),
        _score(
            "flac_rate_lie",
            "1 s FLAC whose STREAMINFO says 1,048,575 Hz",
            patch_flac_streaminfo(flac_1s, rate=(1 << 20) - 1),
            "audio/flac",
        ),
        _score(
            "multipart_rate_lie",
            "a form whose file part is a WAV saying 15,000,001 Hz",
            _multipart(wav(one_sample, rate=15_000_001)),
            f"multipart/form-data; {_BOUNDARY}",
        ),
        _windows("json_nested_100k", "arrays nested 100,000 deep", nested_json(100_000)),
        _windows(
            "json_nested_dict",
            "objects nested 50,000 deep under 'samples'",
            b'{"samples":' * 50_000 + b"1" + b"}" * 50_000,
        ),
        _windows(
            "json_400_digits",
            "rows of 400-digit integers",
            rows_json(300, WINDOWS_CHANNELS, "9" * 400),
        ),
        _windows(
            "json_5000_digits",
            "one 5,000-digit integer (past Python's int limit)",
            rows_json(1, WINDOWS_CHANNELS, "9" * 5000),
        ),
        _windows(
            "json_1e400",
            "rows of 1e400 (parsed as infinity)",
            rows_json(300, WINDOWS_CHANNELS, "1e400"),
        ),
        _windows("json_1e200", "rows of 1e200 (finite)", rows_json(300, WINDOWS_CHANNELS, "1e200")),
        _windows(
            "json_nan_tokens", "rows of the NaN token", rows_json(300, WINDOWS_CHANNELS, "NaN")
        ),
        _windows("json_1mb_series", f"{big_series.count(b'[') - 1} valid rows (1 MB)", big_series),
        _windows("json_wide_row", "one row of 150,000 numbers", rows_json(1, 150_000, "1")),
        _windows("json_many_rows_empty", "300,000 empty rows", b"[" + b"[]," * 299_999 + b"[]]"),
        Payload(
            "stream_start_383999",
            "audio stream started at 383,999 Hz (above the ceiling), 1 MB of audio, stop",
            "audio_stream",
            pcm16(noise(MAX_PAYLOAD_BYTES // 2)),
            start={"sample_rate": 383_999},
        ),
        Payload(
            "stream_start_191999",
            "audio stream started at 191,999 Hz (factor 191,999, refused), 1 MB of audio, stop",
            "audio_stream",
            pcm16(noise(MAX_PAYLOAD_BYTES // 2)),
            start={"sample_rate": 191_999},
        ),
        Payload(
            f"stream_start_{WORST_ADMITTED_RATE}",
            f"audio stream at {WORST_ADMITTED_RATE:,} Hz (longest filter admitted), 1 MB of "
            "audio, stop",
            "audio_stream",
            pcm16(noise(MAX_PAYLOAD_BYTES // 2)),
            start={"sample_rate": WORST_ADMITTED_RATE},
        ),
        Payload(
            "stream_f32_1e19",
            "f32le audio stream of samples 1e19, stop",
            "audio_stream",
            np.full(64000, 1e19, dtype="<f4").tobytes(),
            start={"sample_rate": 16000, "encoding": "f32le"},
        ),
        Payload(
            "sensor_frame_nested",
            "sensor stream frame with samples nested 100,000 deep",
            "sensor_stream",
            b'{"type":"samples","samples":' + nested_json(100_000) + b"}",
        ),
        Payload(
            "sensor_frame_400_digits",
            "sensor stream frame of 400-digit numbers",
            "sensor_stream",
            b'{"type":"samples","samples":' + rows_json(150, WINDOWS_CHANNELS, "9" * 400) + b"}",
        ),
        Payload(
            "sensor_frame_1e200",
            "sensor stream frames of 1e200, then stop",
            "sensor_stream",
            b'{"type":"samples","samples":' + rows_json(300, WINDOWS_CHANNELS, "1e200") + b"}",
        ),
        Payload(
            "sensor_frame_valid",
            "a valid 300-row sensor frame, then stop (control)",
            "sensor_stream",
            b'{"type":"samples","samples":' + frame_rows.encode() + b"}",
        ),
        Payload(
            "slow_body",
            f"1 MB WAV upload sent at 256 B/s (held up to {SLOW_BUDGET_S:g} s)",
            "slow_body",
            wav(pcm16(noise(MAX_PAYLOAD_BYTES // 2 - 32)), rate=16000),
        ),
        Payload(
            "slow_headers",
            f"request headers sent 1 byte/s (held up to {SLOW_BUDGET_S:g} s)",
            "slow_headers",
        ),
        Payload(
            "slowloris_200",
            "200 uploads stalled halfway through their body; /healthz meanwhile",
            "slowloris",
            wav(second, rate=16000),
        ),
    ]
    for item in items:
        if item.largest > MAX_PAYLOAD_BYTES:
            raise AssertionError(f"{item.name} is {item.largest} bytes, over 1 MB")
    return items


_BOUNDARY = "boundary=fuzzfuzzfuzz"


def _multipart(file: bytes) -> bytes:
    return (
        b'--fuzzfuzzfuzz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + file + b"\r\n--fuzzfuzzfuzz--\r\n"
    )


# --- measuring one process ------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmHWM") / 1024


def reset_peak_rss(pid: int) -> None:
    """Make VmHWM restart from the current RSS (Linux: writing 5 to clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class RssWatch:
    """Samples a process's RSS every few ms in a thread, and kills it past `kill_mb`, so a
    payload that would eat the host's memory ends as a failure instead."""

    def __init__(self, pid: int, kill_mb: float, period_s: float = 0.02) -> None:
        self.pid = pid
        self.kill_mb = kill_mb
        self.period_s = period_s
        self.max_mb = 0.0
        self.killed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                current = rss_mb(self.pid)
            except (FileNotFoundError, ProcessLookupError, KeyError):
                return
            self.max_mb = max(self.max_mb, current)
            if current > self.kill_mb:
                self.killed = True
                os.kill(self.pid, signal.SIGKILL)
                return
            time.sleep(self.period_s)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class HealthProbe:
    """Polls /healthz in a thread and keeps the slowest answer: how long the event loop was
    blocked (or the health check refused) while a payload was served."""

    def __init__(self, url: str, period_s: float = 0.05) -> None:
        self.url = url
        self.period_s = period_s
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30.0) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    ok = client.get(f"{self.url}/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.monotonic() - began)
                self.failures += not ok
                self._stop.wait(self.period_s)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# --- sending --------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: int | None = None  # HTTP status, or the WebSocket close code
    detail: str | None = None  # the error message's text, cut short
    error_json: bool | None = None  # an error answer was JSON with a `detail` (HTTP only)
    timed_out: bool = False
    server_closed_after_s: float | None = None  # slow clients: when the server cut them off
    non_finite_verdict: bool = False  # a verdict whose score is null, NaN or infinite
    notes: list[str] = field(default_factory=list)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and bool(np.isfinite(value))


def _http(url: str, payload: Payload, path: str, timeout_s: float) -> Outcome:
    try:
        response = httpx.post(
            f"{url}{path}",
            content=payload.body,
            headers={"content-type": payload.content_type},
            timeout=timeout_s,
        )
    except httpx.TimeoutException:
        return Outcome(timed_out=True)
    except httpx.TransportError as exc:
        return Outcome(notes=[f"transport error: {exc!r}"])
    outcome = Outcome(status=response.status_code)
    if response.status_code == 200:
        verdict = response.json()
        if not _finite(verdict.get("score", 0.0)) or not _finite(verdict.get("max_ratio", 0.0)):
            outcome.non_finite_verdict = True
            outcome.notes.append(f"200 with score {verdict.get('score')!r}")
    if response.status_code >= 400:
        try:
            body = response.json()
            outcome.error_json = isinstance(body, dict) and isinstance(body.get("detail"), str)
            outcome.detail = str(body.get("detail"))[:200] if isinstance(body, dict) else None
        except ValueError:
            outcome.error_json = False
            outcome.detail = response.text[:200]
    return outcome


def _many(url: str, payload: Payload, timeout_s: float) -> Outcome:
    """Several score requests, at once or in turn; the outcome of the worst one."""
    path = f"/v1/models/{AUDIO_MODEL}/score"
    if payload.kind == "score_parallel":
        single = [replace(payload, kind="score")] * payload.copies
        with ThreadPoolExecutor(len(single)) as pool:
            outcomes = list(pool.map(lambda p: _http(url, p, path, timeout_s), single))
    else:
        outcomes = [
            _http(url, replace(payload, kind="score", body=body), path, timeout_s)
            for body in payload.bodies
        ]
    worst = max(outcomes, key=lambda o: (o.timed_out, o.status or 0, o.non_finite_verdict))
    worst.notes.append(f"statuses {[o.status for o in outcomes]}")
    return worst


def _stream(ws_url: str, payload: Payload, timeout_s: float) -> Outcome:
    """Start, send the body (binary audio in 64 KB frames, or one sensor text frame), stop,
    and read every message until the server closes."""
    outcome = Outcome()
    deadline = time.monotonic() + timeout_s
    model = AUDIO_MODEL if payload.kind == "audio_stream" else WINDOWS_MODEL
    try:
        with connect(
            f"{ws_url}/v1/models/{model}/stream", open_timeout=timeout_s, max_size=None
        ) as ws:
            ws.send(json.dumps({"type": "start", **payload.start}))
            if payload.kind == "audio_stream":
                for offset in range(0, len(payload.body), 65536):
                    ws.send(payload.body[offset : offset + 65536])
            else:
                ws.send(payload.body.decode())
            ws.send(json.dumps({"type": "stop"}))
            while True:
                message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
                if message.get("type") == "score" and not _finite(message.get("score")):
                    outcome.non_finite_verdict = True
                if message.get("type") == "steps" and not all(
                    _finite(s) for s in message.get("scores", [])
                ):
                    outcome.non_finite_verdict = True
                if message.get("type") in {"error", "end"}:
                    outcome.notes.append(json.dumps(message)[:200])
                if message.get("type") == "error":
                    outcome.detail = f"{message.get('code')}: {message.get('message')}"[:200]
    except TimeoutError:
        outcome.timed_out = True
    except ConnectionClosed as exc:
        outcome.status = exc.rcvd.code if exc.rcvd is not None else None
    return outcome


def _trickle(url: str, head: bytes, body: bytes, bytes_per_s: float) -> Outcome:
    """Send `head` then `body` at `bytes_per_s` on a raw socket until the server closes the
    connection or SLOW_BUDGET_S passes."""
    host, port = url.removeprefix("http://").split(":")
    outcome = Outcome()
    began = time.monotonic()
    data = head + body
    step = max(1, int(bytes_per_s / 4))
    with socket.create_connection((host, int(port)), timeout=5.0) as sock:
        sock.settimeout(0.25)
        sent = 0
        while time.monotonic() - began < SLOW_BUDGET_S:
            if sent < len(data):
                try:
                    sock.sendall(data[sent : sent + step])
                except OSError:
                    outcome.server_closed_after_s = time.monotonic() - began
                    return outcome
                sent += step
            try:
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                answer = b""
            outcome.server_closed_after_s = time.monotonic() - began
            if answer:
                outcome.status = int(answer.split(b" ", 2)[1])
                outcome.notes.append(answer[:160].decode(errors="replace"))
            return outcome
    outcome.timed_out = True
    outcome.notes.append(f"still open after {SLOW_BUDGET_S:g} s, {sent} bytes sent")
    return outcome


def _head(url: str, path: str, content_type: str, length: int) -> bytes:
    host = url.removeprefix("http://")
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _slowloris(url: str, payload: Payload) -> Outcome:
    """200 connections send their headers and half a body, then nothing."""
    host, port = url.removeprefix("http://").split(":")
    path = f"/v1/models/{AUDIO_MODEL}/score"
    head = _head(url, path, "audio/wav", len(payload.body))
    sockets: list[socket.socket] = []
    outcome = Outcome()
    try:
        for _ in range(200):
            sock = socket.create_connection((host, int(port)), timeout=5.0)
            sock.sendall(head + payload.body[: len(payload.body) // 2])
            sock.setblocking(False)
            sockets.append(sock)
        began = time.monotonic()
        open_ = set(range(len(sockets)))
        while open_ and time.monotonic() - began < SLOW_BUDGET_S:
            for i in list(open_):
                try:
                    if sockets[i].recv(4096) == b"":
                        open_.discard(i)
                except BlockingIOError:
                    pass
                except OSError:
                    open_.discard(i)
            time.sleep(0.2)
        outcome.notes.append(
            f"{len(sockets) - len(open_)} of {len(sockets)} closed by the server within "
            f"{time.monotonic() - began:.0f} s"
        )
        outcome.timed_out = bool(open_)
    finally:
        for sock in sockets:
            sock.close()
    return outcome


def send(server: ServeProcess, payload: Payload, timeout_s: float) -> Outcome:
    ws_url = server.url.replace("http://", "ws://")
    if payload.kind == "score":
        return _http(server.url, payload, f"/v1/models/{AUDIO_MODEL}/score", timeout_s)
    if payload.kind in {"score_parallel", "score_sequence"}:
        return _many(server.url, payload, timeout_s)
    if payload.kind == "windows":
        return _http(server.url, payload, f"/v1/models/{WINDOWS_MODEL}/windows", timeout_s)
    if payload.kind in {"audio_stream", "sensor_stream"}:
        return _stream(ws_url, payload, timeout_s)
    path = f"/v1/models/{AUDIO_MODEL}/score"
    if payload.kind == "slow_body":
        head = _head(server.url, path, "audio/wav", len(payload.body))
        return _trickle(server.url, head, payload.body, 256.0)
    if payload.kind == "slow_headers":
        head = _head(server.url, path, "audio/wav", 1000) + b"X-Filler: " + b"a" * 1000
        return _trickle(server.url, b"", head, 1.0)
    return _slowloris(server.url, payload)


def _warm_up(server: ServeProcess, payload: Payload) -> None:
    """One ordinary request through the payload's path, so first-call costs are not its own."""
    if payload.kind == "windows" or payload.kind == "sensor_stream":
        body = json.dumps(sensor_series(300, channels=WINDOWS_CHANNELS, seed=1).tolist())
        httpx.post(
            f"{server.url}/v1/models/{WINDOWS_MODEL}/windows",
            content=body,
            headers={"content-type": "application/json"},
            timeout=60,
        ).raise_for_status()
    if payload.kind != "windows":
        httpx.post(
            f"{server.url}/v1/models/{AUDIO_MODEL}/score",
            content=encode(noise(32000, seed=2), 16000),
            headers={"content-type": "audio/wav"},
            timeout=60,
        ).raise_for_status()


# --- one fresh server per payload -----------------------------------------------------------


@dataclass
class Measured:
    name: str
    what: str
    kind: str
    bytes: int
    idle_rss_mb: float
    peak_above_idle_mb: float
    cpu_s: float | None  # None when the server died or was killed
    wall_s: float
    rss_after_2s_above_idle_mb: float | None
    slowest_healthz_s: float
    healthz_failures: int
    killed_at_mb: float | None
    outcome: Outcome
    requests: int
    within_target: bool


def make_models(folder: Path) -> Path:
    """A models folder with one small audio bundle and one 3-channel windows bundle."""
    models = folder / "models"
    small_audio_bundle(models / AUDIO_MODEL, name=AUDIO_MODEL)
    make_windows_bundle(models / WINDOWS_MODEL, name=WINDOWS_MODEL, channels=WINDOWS_CHANNELS)
    return models


@contextmanager
def fresh_server(
    models: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[ServeProcess]:
    settings = {"AUSCULT_RELOAD_POLL_SECONDS": "0", "OMP_NUM_THREADS": "1", **(env or {})}
    with serve_process(models, log, env=settings) as server:
        yield server


def measure(
    models: Path, log: Path, payload: Payload, *, timeout_s: float, kill_mb: float
) -> Measured:
    with fresh_server(models, log) as server:
        pid = server.process.pid
        _warm_up(server, payload)
        time.sleep(0.5)
        reset_peak_rss(pid)
        idle = rss_mb(pid)
        cpu_before = cpu_seconds(pid)
        began = time.monotonic()
        with RssWatch(pid, kill_mb) as watch, HealthProbe(server.url) as probe:
            outcome = send(server, payload, timeout_s)
            wall = time.monotonic() - began
        alive = server.process.poll() is None
        cpu = cpu_seconds(pid) - cpu_before if alive else None
        peak = (peak_rss_mb(pid) if alive else watch.max_mb) - idle
        settled: float | None = None
        if alive:
            time.sleep(2.0)
            settled = rss_mb(pid) - idle
        else:
            outcome.notes.append(f"server died (exit {server.process.returncode})")
    # The targets hold per request: CPU is shared by every request sent, memory only by those
    # in flight together.
    concurrent = payload.copies if payload.kind == "score_parallel" else 1
    server_error = outcome.status is not None and 500 <= outcome.status < 600
    ws_internal = outcome.status == 1011
    ok = (
        alive
        and not watch.killed
        and not outcome.timed_out
        and not server_error
        and not ws_internal
        and outcome.error_json is not False
        and not outcome.non_finite_verdict
        and probe.failures == 0
        and peak / concurrent <= TARGET_PEAK_MB
        and cpu is not None
        and cpu / payload.requests <= TARGET_CPU_S
    )
    return Measured(
        name=payload.name,
        what=payload.what,
        kind=payload.kind,
        bytes=payload.largest,
        idle_rss_mb=round(idle, 1),
        peak_above_idle_mb=round(peak, 1),
        cpu_s=None if cpu is None else round(cpu, 3),
        wall_s=round(wall, 3),
        rss_after_2s_above_idle_mb=None if settled is None else round(settled, 1),
        slowest_healthz_s=round(max(probe.latencies, default=0.0), 3),
        healthz_failures=probe.failures,
        killed_at_mb=kill_mb if watch.killed else None,
        outcome=outcome,
        requests=payload.requests,
        within_target=ok,
    )


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "nice": os.nice(0),
        "source": source_tree(),
    }


def source_tree() -> str:
    """The commit measured, and whether the working tree had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.count("\n")
    except (OSError, subprocess.CalledProcessError):
        return f"{PROJECT_ROOT} (not a git checkout)"
    return f"{head}" + (f" with {changed} changed files" if changed else "")


def _print(row: Measured) -> None:
    o = row.outcome
    answer = "timeout" if o.timed_out else str(o.status)
    print(
        f"{row.name:34s} {answer:>7s} peak +{row.peak_above_idle_mb:7.1f} MB  "
        f"cpu {row.cpu_s or 0:6.2f} s  wall {row.wall_s:6.2f} s  healthz max "
        f"{row.slowest_healthz_s:5.2f} s  {'ok' if row.within_target else 'FAIL'}",
        flush=True,
    )


def run(names: list[str] | None, label: str, timeout_s: float, kill_mb: float) -> dict[str, Any]:
    chosen = [p for p in payloads() if names is None or p.name in names]
    load_before = os.getloadavg()
    rows: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="auscult-hardening-") as tmp:
        models = make_models(Path(tmp))
        for payload in chosen:
            row = measure(
                models, Path(tmp) / "server.log", payload, timeout_s=timeout_s, kill_mb=kill_mb
            )
            _print(row)
            rows.append(row)
    failed = [r.name for r in rows if not r.within_target]
    report = {
        "benchmark": "hardening_payloads",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "nice -n 10 python -m benchmarks.hardening_payloads --label " + label,
        "models": "tests/bundle_factory.py: small audio bundle (16 kHz, 32 mels, 8-frame "
        "blocks) and a 3-channel windows bundle (window 100)",
        "targets": {"peak_above_idle_mb": TARGET_PEAK_MB, "cpu_s": TARGET_CPU_S},
        "kill_mb": kill_mb,
        "timeout_s": timeout_s,
        "machine": {**machine(), "load_average_before": load_before},
        "payloads": len(rows),
        "within_target": len(rows) - len(failed),
        "failed": failed,
        "median_idle_rss_mb": statistics.median(r.idle_rss_mb for r in rows) if rows else None,
        "results": [asdict(r) for r in rows],
    }
    return report


DOC = PROJECT_ROOT / "docs" / "HARDENING.md"


def replace_doc_section(name: str, text: str) -> None:
    """Put `text` between the `<!-- name:begin -->` and `<!-- name:end -->` lines of
    docs/HARDENING.md."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    doc = DOC.read_text()
    if begin not in doc or end not in doc:
        raise SystemExit(f"{DOC} has no {begin} ... {end} section")
    head, rest = doc.split(begin, 1)
    DOC.write_text(f"{head}{begin}\n{text.strip()}\n{end}{rest.split(end, 1)[1]}")


def _answer(row: dict[str, Any]) -> str:
    """The table's answer column: a status or close code, or how a slow client ended."""
    o = row["outcome"]
    if row["killed_at_mb"]:
        return "killed"
    if o["timed_out"]:
        return "no answer"
    # Slow clients cut off without a status line: the connection closed, or for slowloris_200
    # the note counting the connections closed.
    parts = [] if o["status"] is None else [str(o["status"])]
    if o.get("non_finite_verdict"):
        parts.append("non-finite verdict")
    if o.get("server_closed_after_s") is not None:
        parts.append(f"closed after {o['server_closed_after_s']:.1f} s")
    if not parts and row["kind"] == "slowloris":
        parts.extend(note for note in o["notes"] if "closed by the server" in note)
    return ", ".join(parts) or "no status"


def render(report: dict[str, Any], source: str) -> str:
    """The per-payload table of a report, for docs/HARDENING.md."""
    m = report["machine"]
    lines = [
        f"`{report['command']}` ({source}; {report['when']}; source tree {m['source']}; "
        f"{m['cpus']} CPUs, load average {m['load_average_before'][0]:.1f} before and "
        f"{m['load_average'][0]:.1f} after, nice {m['nice']}). Targets: peak RSS at most "
        f"{report['targets']['peak_above_idle_mb']:g} MB above idle and at most "
        f"{report['targets']['cpu_s']:g} s of CPU per request; the server is killed past "
        f"{report['kill_mb']:g} MB. **{report['within_target']} of {report['payloads']} "
        "payloads within target.**",
        "",
        "| payload | bytes | answer | peak above idle (MB) | CPU (s) | wall (s) | "
        "RSS above idle 2 s later (MB) | slowest /healthz (s) | ok |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        answer = _answer(r)
        after = r["rss_after_2s_above_idle_mb"]
        peak = f"{r['peak_above_idle_mb']:.1f}"
        if r["killed_at_mb"]:
            peak = f"over {r['killed_at_mb'] - r['idle_rss_mb']:.0f}"
        cpu = "-" if r["cpu_s"] is None else f"{r['cpu_s']:.2f}"
        count = f" x {r['requests']}" if r.get("requests", 1) > 1 else ""
        lines.append(
            f"| `{r['name']}`: {r['what']} | {r['bytes']}{count} | {answer} | "
            f"{peak} | {cpu} | {r['wall_s']:.1f} | "
            f"{'-' if after is None else f'{after:.1f}'} | {r['slowest_healthz_s']:.2f} | "
            f"{'yes' if r['within_target'] else '**no**'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", metavar="NAME", help="payload names to run")
    parser.add_argument("--list", action="store_true", help="list the payloads and exit")
    parser.add_argument(
        "--doc", action="store_true", help="also write the table into docs/HARDENING.md"
    )
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="only write this result's table into the doc"
    )
    parser.add_argument("--label", default="latest", help="results go to hardening_LABEL.json")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds one request may take before it counts as a hang",
    )
    parser.add_argument(
        "--kill-mb",
        type=float,
        default=DEFAULT_KILL_MB,
        help="kill the server once its RSS passes this many MB",
    )
    args = parser.parse_args(argv)
    if args.list:
        for item in payloads():
            print(f"{item.name:34s} {item.largest:8d} B  {item.what}")
        return 0
    if args.render:
        replace_doc_section(
            "hardening",
            render(
                json.loads(args.render.read_text()),
                str(args.render.resolve().relative_to(PROJECT_ROOT)),
            ),
        )
        return 0
    report = run(args.only, args.label, args.timeout, args.kill_mb)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"hardening_{args.label}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    if args.doc:
        replace_doc_section("hardening", render(report, str(out.relative_to(PROJECT_ROOT))))
    print(f"{report['within_target']}/{report['payloads']} within target; wrote {out}")
    return 0 if not report["failed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

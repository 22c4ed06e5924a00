"""WS /v1/models/{name}/stream through a real WebSocket client: verdicts equal to scoring the
same audio as a clip, and every limit and protocol error with its close code."""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from math import gcd
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from websockets.exceptions import ConnectionClosed

from service.api.streams.connection import StreamConnection
from service.audio.resample import FILTERS, resample
from service.config import (
    DEFAULT_MAX_RESAMPLE_FACTOR,
    DEFAULT_MAX_SAMPLE_RATE,
    DEFAULT_MIN_SAMPLE_RATE,
    Settings,
)
from tests.bundle_factory import machine_sound, make_windows_bundle
from tests.server import LiveServer, running_server
from tests.service.api.streams import read_to_close, start, stream_connection
from tests.service.clips import encode, small_audio_bundle


def _normal_then_anomalous() -> np.ndarray:
    normal = machine_sound(2.0, seed=31)
    return np.concatenate([normal, machine_sound(1.0, seed=32, anomalous=True)])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    small_audio_bundle(folder / "fan", name="fan", version="7")
    make_windows_bundle(folder / "press", name="press", window=20)
    return folder


@pytest.fixture(scope="module")
def server(models: Path) -> Iterator[LiveServer]:
    settings = Settings(models_dir=models, reload_poll_seconds=0, stations=["press-1"])
    with running_server(settings) as live:
        yield live


def _frames(payload: bytes, size: int) -> list[bytes]:
    return [payload[i : i + size] for i in range(0, len(payload), size)]


async def _stream_all(
    server: LiveServer, frames: list[bytes], **start_fields: Any
) -> tuple[dict[str, Any], list[dict[str, Any]], int | None]:
    async with stream_connection(server) as ws:
        ready = await start(ws, **start_fields)
        for frame in frames:
            await ws.send(frame)
        await ws.send(json.dumps({"type": "stop"}))
        messages, code = await read_to_close(ws)
    return ready, messages, code


def _clip_blocks(server: LiveServer, wav: bytes) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{server.url}/v1/models/fan/score",
        content=wav,
        headers={"Content-Type": "audio/wav"},
        timeout=30,
    )
    response.raise_for_status()
    blocks: list[dict[str, Any]] = response.json()["blocks"]
    return blocks


def _assert_match(scores: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> None:
    assert [s["seq"] for s in scores] == [b["index"] for b in blocks]
    assert [s["anomaly"] for s in scores] == [b["anomaly"] for b in blocks]
    assert [s["start_s"] for s in scores] == pytest.approx([b["start_s"] for b in blocks])
    assert [s["end_s"] for s in scores] == pytest.approx([b["end_s"] for b in blocks])
    assert [s["score"] for s in scores] == pytest.approx([b["score"] for b in blocks], rel=1e-4)
    assert 0 < sum(s["anomaly"] for s in scores) < len(scores)


def test_stream_verdicts_match_scoring_the_same_audio_as_a_clip(server: LiveServer) -> None:
    wav = encode(_normal_then_anomalous())
    pcm, _ = sf.read(io.BytesIO(wav), dtype="int16")
    # 100 ms frames: blocks of 128 ms straddle them.
    frames = _frames(pcm.astype("<i2").tobytes(), 3200)
    ready, messages, code = asyncio.run(
        _stream_all(server, frames, encoding="pcm_s16le", station="press-1")
    )
    assert ready["type"] == "ready"
    assert (ready["model"], ready["version"], ready["model_sample_rate"]) == ("fan", "7", 16000)
    assert ready["block_seconds"] == pytest.approx(0.128)
    *scores, end = messages
    assert code == 1000
    assert all(m["type"] == "score" for m in scores)
    assert all(m["ratio"] == pytest.approx(m["score"] / ready["threshold"]) for m in scores)
    _assert_match(scores, _clip_blocks(server, wav))
    assert end == {
        "type": "end",
        "blocks": len(scores),
        "anomalies": sum(s["anomaly"] for s in scores),
        "audio_seconds": 3.0,
    }


def test_fifty_concurrent_streams_each_get_the_verdicts_of_their_own_clip(
    server: LiveServer,
) -> None:
    # Different audio per stream (odd seeds anomalous), 100 ms frames, all at once: their
    # blocks are scored in shared model calls, and each must get its own verdicts back.
    clips = [encode(machine_sound(1.0, seed=100 + i, anomalous=i % 2 == 1)) for i in range(50)]

    async def one(wav: bytes) -> tuple[list[dict[str, Any]], int | None]:
        pcm, _ = sf.read(io.BytesIO(wav), dtype="int16")
        _, messages, code = await _stream_all(server, _frames(pcm.astype("<i2").tobytes(), 3200))
        return messages, code

    async def all_streams() -> list[tuple[list[dict[str, Any]], int | None]]:
        return await asyncio.gather(*(one(wav) for wav in clips))

    results = asyncio.run(all_streams())
    for wav, (messages, code) in zip(clips, results, strict=True):
        *scores, end = messages
        blocks = _clip_blocks(server, wav)
        assert (code, end["type"]) == (1000, "end")
        assert [s["seq"] for s in scores] == [b["index"] for b in blocks]
        assert [s["anomaly"] for s in scores] == [b["anomaly"] for b in blocks]
        assert [s["score"] for s in scores] == pytest.approx([b["score"] for b in blocks], rel=1e-4)


def test_streams_are_not_compressed(server: LiveServer) -> None:
    async def extensions() -> str | None:
        # The client offers permessage-deflate, as most do: PCM gains nothing from it.
        async with stream_connection(server) as ws:
            assert ws.response is not None
            negotiated: str | None = ws.response.headers.get("Sec-WebSocket-Extensions")
            return negotiated

    assert asyncio.run(extensions()) is None


def test_a_float_stream_at_48_khz_is_resampled_like_the_clip(server: LiveServer) -> None:
    samples = resample(_normal_then_anomalous(), 16000, 48000)
    wav = encode(samples, 48000, subtype="FLOAT")
    frames = _frames(samples.astype("<f4").tobytes(), 4 * 4800)
    _, messages, code = asyncio.run(
        _stream_all(server, frames, sample_rate=48000, encoding="f32le")
    )
    assert code == 1000
    _assert_match(messages[:-1], _clip_blocks(server, wav))


async def _expect_error(
    server: LiveServer, model: str, first: str | bytes | None, then: Sequence[str | bytes]
) -> tuple[dict[str, Any], int | None]:
    async with stream_connection(server, model) as ws:
        if first is not None:
            await ws.send(first)
            if json.loads(await ws.recv())["type"] != "ready":
                raise AssertionError("start was refused")
        for message in then:
            await ws.send(message)
        messages, code = await read_to_close(ws)
    *scores, error = messages
    # Frames accepted before the error may have been scored already.
    assert all(m["type"] == "score" for m in scores)
    return error, code


START = json.dumps({"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le"})


@pytest.mark.parametrize(
    ("model", "first", "then", "code", "close_code", "words"),
    [
        ("pump", None, [], "unknown_model", 1008, "no model named 'pump'"),
        # A windows model streams sensor rows: an audio start message is refused, not guessed at.
        ("press", None, [START], "bad_start", 1008, 'the first message must be {"type": "start"}'),
        ("fan", None, [b"\x00\x00"], "protocol", 1008, "first message must be the JSON"),
        ("fan", None, ['{"type": "start"}'], "bad_start", 1008, "sample_rate: Field required"),
        (
            "fan",
            None,
            ['{"type": "start", "sample_rate": 16000, "encoding": "mp3"}'],
            "bad_start",
            1008,
            "encoding",
        ),
        ("fan", START, [b"\x00\x00\x00"], "bad_frame", 1008, "multiple of 2 bytes"),
        ("fan", START, ['{"type": "pause"}'], "protocol", 1008, 'finally {"type": "stop"}'),
        ("fan", START, [b"\x00" * (1024 * 1024 + 2)], "frame_too_large", 1009, "smaller frames"),
    ],
)
def test_protocol_violations_get_an_error_then_the_close_code(
    server: LiveServer,
    model: str,
    first: str | None,
    then: list[str | bytes],
    code: str,
    close_code: int,
    words: str,
) -> None:
    error, closed_with = asyncio.run(_expect_error(server, model, first, then))
    assert error["type"] == "error"
    assert error["code"] == code
    assert words in error["message"]
    assert closed_with == close_code


def test_dropped_frames_and_open_connections_are_in_the_metrics(server: LiveServer) -> None:
    asyncio.run(_expect_error(server, "fan", START, [b"\x00\x00\x00"]))
    text = httpx.get(f"{server.url}/metrics").text
    assert 'auscult_websocket_frames_dropped_total{model="fan",reason="bad_frame"}' in text
    assert "auscult_websocket_connections 0.0" in text


def test_a_client_sending_faster_than_scoring_is_pushed_back_not_dropped(models: Path) -> None:
    settings = Settings(models_dir=models, reload_poll_seconds=0, ws_buffer_bytes=64 * 1024)
    # 12 s (384 kB) sent at once in 0.5 s frames: six times what the 64 KiB buffer holds. The
    # server stops reading until it has room, so the client's sends wait; nothing is dropped.
    wav = encode(np.tile(_normal_then_anomalous(), 4))
    pcm, _ = sf.read(io.BytesIO(wav), dtype="int16")
    frames = _frames(pcm.astype("<i2").tobytes(), 16000)
    with running_server(settings) as live:
        ready, messages, code = asyncio.run(_stream_all(live, frames, encoding="pcm_s16le"))
        blocks = _clip_blocks(live, wav)
        text = httpx.get(f"{live.url}/metrics").text
    *scores, end = messages
    assert (ready["type"], code, end["type"], end["audio_seconds"]) == ("ready", 1000, "end", 12)
    _assert_match(scores, blocks)
    assert "auscult_websocket_frames_dropped_total{" not in text


def test_a_stream_longer_than_the_limit_is_closed(models: Path) -> None:
    settings = Settings(models_dir=models, reload_poll_seconds=0, ws_max_stream_seconds=1.0)
    frame = np.zeros(9600, dtype="<i2").tobytes()  # 0.6 s
    with running_server(settings) as live:
        error, code = asyncio.run(_expect_error(live, "fan", START, [frame, frame]))
    assert (error["code"], code) == ("stream_too_long", 1008)
    assert "limit of 1 s of audio" in error["message"]


def test_streams_beyond_the_connection_limit_are_refused(models: Path) -> None:
    settings = Settings(models_dir=models, reload_poll_seconds=0, ws_max_connections=1)

    async def scenario(live: LiveServer) -> None:
        async with stream_connection(live) as first:
            assert (await start(first))["type"] == "ready"
            async with stream_connection(live) as second:
                [error], code = await read_to_close(second)
            assert (error["code"], code) == ("too_many_streams", 1013)
            assert "all 1 stream slots are in use" in error["message"]
        # The slot is free again once the first stream has gone.
        # Until the server has released the slot, a new stream is refused with 1013, which can
        # reach the client while it is still sending its start message.
        answer: Any = None
        for _ in range(50):
            try:
                async with stream_connection(live) as third:
                    answer = await start(third)
            except ConnectionClosed as closed:
                answer = closed
            if isinstance(answer, dict) and answer["type"] == "ready":
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the slot was not released: {answer}")

    with running_server(settings) as live:
        asyncio.run(scenario(live))


def test_an_idle_stream_is_closed(models: Path) -> None:
    settings = Settings(models_dir=models, reload_poll_seconds=0, ws_idle_timeout_seconds=0.3)

    async def scenario(live: LiveServer) -> tuple[list[dict[str, Any]], int | None]:
        async with stream_connection(live) as ws:
            assert (await start(ws))["type"] == "ready"
            return await read_to_close(ws)

    with running_server(settings) as live:
        started = time.monotonic()
        [error], code = asyncio.run(scenario(live))
    assert (error["code"], code) == ("idle_timeout", 1001)
    assert time.monotonic() - started < 5


def test_a_stream_is_idle_only_after_the_timeout_since_its_last_frame(models: Path) -> None:
    settings = Settings(models_dir=models, reload_poll_seconds=0, ws_idle_timeout_seconds=1.5)
    frame = np.zeros(1600, dtype="<i2").tobytes()

    async def scenario(live: LiveServer) -> tuple[list[dict[str, Any]], int | None, float]:
        async with stream_connection(live) as ws:
            assert (await start(ws))["type"] == "ready"
            # Frames every 0.3 s for 3 s: two idle timeouts in all, never one between frames.
            for _ in range(10):
                await asyncio.sleep(0.3)
                await ws.send(frame)
            silent_since = time.monotonic()
            messages, code = await read_to_close(ws)
            return messages, code, time.monotonic() - silent_since

    with running_server(settings) as live:
        messages, code, silent = asyncio.run(scenario(live))
    *scores, error = messages
    assert all(m["type"] == "score" for m in scores)
    assert (error["code"], code) == ("idle_timeout", 1001)
    assert silent >= 1.5


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One server-to-client WebSocket frame (unmasked): opcode and payload; (-1, b'') at EOF."""
    header = sock.recv(2)
    if len(header) < 2:
        return -1, b""
    opcode, length = header[0] & 0x0F, header[1] & 0x7F
    if length == 126:
        length = int.from_bytes(sock.recv(2), "big")
    elif length == 127:
        length = int.from_bytes(sock.recv(8), "big")
    payload = b""
    while len(payload) < length:
        payload += sock.recv(length - len(payload))
    return opcode, payload


def test_the_server_pings_and_drops_a_client_that_never_answers(models: Path) -> None:
    settings = Settings(
        models_dir=models,
        reload_poll_seconds=0,
        ws_ping_interval_seconds=0.2,
        ws_ping_timeout_seconds=0.3,
    )
    with (
        running_server(settings) as live,
        socket.create_connection((live.host, live.port), timeout=5) as sock,
    ):
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                "GET /v1/models/fan/stream HTTP/1.1\r\n"
                f"Host: {live.host}:{live.port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(1)
        assert response.startswith(b"HTTP/1.1 101")
        # This raw client never answers: the server pings, then gives up on it.
        opcodes = []
        while (opcode := _read_frame(sock)[0]) not in (-1, 0x8):
            opcodes.append(opcode)
        assert 0x9 in opcodes  # ping


def test_float_samples_too_loud_to_score_end_the_stream_with_an_error(server: LiveServer) -> None:
    # 1e19 is a finite float32, but its spectrum is not: no block may be judged normal.
    start = json.dumps({"type": "start", "sample_rate": 16000, "encoding": "f32le"})
    loud = np.full(16000, 1e19, dtype="<f4").tobytes()
    error, code = asyncio.run(_expect_error(server, "fan", start, [loud, '{"type": "stop"}']))
    assert (error["type"], error["code"], code) == ("error", "bad_frame", 1008)
    assert "magnitude 1e+19" in error["message"]


@pytest.mark.parametrize("rate", [7999, 192001])
def test_a_start_outside_the_sample_rate_range_is_refused(server: LiveServer, rate: int) -> None:
    start = json.dumps({"type": "start", "sample_rate": rate})
    error, code = asyncio.run(_expect_error(server, "fan", None, [start]))
    assert (error["code"], code) == ("bad_start", 1008)
    assert (
        f"sample_rate {rate} Hz is outside the accepted range 8000 to 192000 Hz"
        in (error["message"])
    )


def test_a_start_at_a_rate_whose_filter_would_be_huge_is_refused(server: LiveServer) -> None:
    # 191,999 Hz is inside the range, but its ratio to 16 kHz reduces to 16000/191999: the
    # filter would have 3.84 M taps (issue 10).
    start = json.dumps({"type": "start", "sample_rate": 191_999})
    error, code = asyncio.run(_expect_error(server, "fan", None, [start]))
    assert (error["code"], code) == ("bad_start", 1008)
    assert "sample rate 191999 Hz cannot be resampled to the model's 16000 Hz" in error["message"]
    assert "the nearest are 191990 and 192000 Hz" in error["message"]


def _slowest_healthz(url: str, until: threading.Event | None, count: int) -> float:
    """The slowest of `count` /healthz answers (or of those until `until` is set)."""
    slowest = 0.0
    with httpx.Client(base_url=url, timeout=60) as http:
        done = 0
        while (until is None and done < count) or (until is not None and not until.is_set()):
            started = time.monotonic()
            http.get("/healthz").raise_for_status()
            slowest = max(slowest, time.monotonic() - started)
            done += 1
            time.sleep(0.02)
    return slowest


def _factor(rate: int, model_rate: int = 16000) -> int:
    return max(rate, model_rate) // gcd(rate, model_rate)


def _worst_allowed_rates(count: int) -> list[int]:
    """`count` rates of the default range whose filters to 16 kHz are the longest that
    AUSCULT_MAX_RESAMPLE_FACTOR admits (about 400 K taps), each of a different length."""
    chosen: dict[int, int] = {}
    for rate in range(DEFAULT_MAX_SAMPLE_RATE, DEFAULT_MIN_SAMPLE_RATE, -1):
        if _factor(rate) <= DEFAULT_MAX_RESAMPLE_FACTOR:
            chosen.setdefault(_factor(rate), rate)
    return [chosen[factor] for factor in sorted(chosen, reverse=True)[:count]]


def test_streams_starting_at_odd_rates_do_not_stall_other_requests(models: Path) -> None:
    # The odd rates with the longest filters the default limit admits, none in the cache yet.
    rates = _worst_allowed_rates(48)
    assert min(_factor(rate) for rate in rates) > 0.99 * DEFAULT_MAX_RESAMPLE_FACTOR
    FILTERS.clear()
    settings = Settings(models_dir=models, reload_poll_seconds=0, pool_queue_limit=len(rates))

    async def start_all(live: LiveServer) -> tuple[float, float]:
        started = threading.Event()

        async def one(rate: int) -> None:
            async with stream_connection(live) as ws:
                assert (await start(ws, sample_rate=rate))["type"] == "ready"

        # The probe runs in a thread of its own, so this loop's work does not delay it.
        probe = asyncio.create_task(asyncio.to_thread(_slowest_healthz, live.url, started, 0))
        began = time.monotonic()
        try:
            await asyncio.gather(*(one(rate) for rate in rates))
        finally:
            started.set()
        return await probe, time.monotonic() - began

    with running_server(settings) as live:
        baseline = _slowest_healthz(live.url, None, 20)
        during, took = asyncio.run(start_all(live))
    # Designing the filters took seconds; a stalled event loop would hold /healthz for most of
    # that time, while one that stays free answers as it does when idle.
    assert took > 1.0
    assert during < max(10 * baseline, 0.25 * took), (baseline, during, took)


def _connections_alive() -> int:
    gc.collect()
    return sum(type(o) is StreamConnection for o in gc.get_objects())


def test_a_finished_stream_leaves_nothing_in_memory(models: Path) -> None:
    # The server runs in this process: what its streams leave behind can be counted. Each
    # session ends in one of the ways a stream ends: stop, an error, the client leaving.
    settings = Settings(models_dir=models, reload_poll_seconds=0)
    payload = (machine_sound(1.0, seed=33) * 32767).astype("<i2").tobytes()

    async def sessions(server: LiveServer) -> None:
        for ending in ("stop", "bad_frame", "leave"):
            async with stream_connection(server) as ws:
                await start(ws)
                await ws.send(payload[:3200])
                if ending == "stop":
                    await ws.send(json.dumps({"type": "stop"}))
                elif ending == "bad_frame":
                    await ws.send(b"\x00")
                else:
                    continue
                await read_to_close(ws)

    with running_server(settings) as server:
        before = _connections_alive()
        asyncio.run(sessions(server))
        deadline = time.monotonic() + 10
        while _connections_alive() > before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _connections_alive() == before

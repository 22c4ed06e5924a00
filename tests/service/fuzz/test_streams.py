"""Fuzzed WebSocket sessions on `WS /v1/models/{name}/stream`: audio streams with any start
message and any binary frames, and sensor streams driven by a lock-step client (one frame, then
wait for the answer). The server never reports an internal error, never gives a non-finite
verdict, answers every sensor frame, scores every step on `stop`, and closes in bounded time."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.service.fuzz.conftest import (
    AUDIO,
    IDLE_TIMEOUT_S,
    WINDOWS,
    WINDOWS_CHANNELS,
    FuzzServer,
)
from tests.service.fuzz.properties import ANSWER_TIMEOUT_S, check_stream_message
from tests.service.fuzz.test_windows_bodies import json_values

# Sessions are slow to shrink (each failing one waits out a timeout): report the first found.
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# A lock-step client's wait for the answer to one frame: well inside the server's idle
# timeout, so an unanswered frame is not mistaken for an answer (the idle_timeout error).
LOCKSTEP_S = IDLE_TIMEOUT_S / 2
INTERNAL_ERROR = 1011
NORMAL = 1000


def _connect(server: FuzzServer, model: str) -> ClientConnection:
    return connect(
        f"{server.ws_url}/v1/models/{model}/stream",
        additional_headers=server.headers,
        open_timeout=ANSWER_TIMEOUT_S,
        max_size=None,
    )


def _read_to_close(ws: ClientConnection, sent: str) -> tuple[list[dict[str, Any]], int | None]:
    """Every message until the server closes; fails if it has not closed in time."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no close within {ANSWER_TIMEOUT_S} s after {sent}: {messages[-3:]}"
            message = json.loads(ws.recv(timeout=left))
            check_stream_message(message, sent)
            messages.append(message)
    except TimeoutError as exc:
        raise AssertionError(f"no close within {ANSWER_TIMEOUT_S} s after {sent}") from exc
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
    assert code != INTERNAL_ERROR, f"closed with 1011 after {sent}: {messages[-3:]}"
    return messages, code


# Mostly rates a server accepts (listed twice to weigh them), so the frames get scored: among
# them odd ones with the longest filters the resampling factor limit admits (19,999 and 19,199
# to 16 kHz). Among the others, odd rates inside the range that the limit refuses.
_GOOD_RATES = st.sampled_from([8000, 16000, 44_100, 48_000, 44_090, 159_992, 191_990])
start_rates = st.one_of(
    _GOOD_RATES,
    _GOOD_RATES,
    st.sampled_from([1000, 7999, 44_099, 191_999, 192_001, 383_999, 384_000]),
    st.integers(-10, 10**7),
    st.floats(allow_nan=True),
    st.text(max_size=4),
)


@st.composite
def audio_frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "f32", "s16"]))
    if kind == "bytes":
        return draw(st.binary(max_size=4096))
    n = draw(st.integers(0, 8000))
    if kind == "f32":
        value = draw(st.sampled_from([0.0, 0.5, 1e19, 3e38, float("nan"), float("inf")]))
        return np.full(n, value, dtype="<f4").tobytes()
    return np.random.default_rng(n).integers(-32768, 32767, n, dtype="<i2").tobytes()


@given(
    start=st.fixed_dictionaries(
        {"type": st.just("start"), "sample_rate": start_rates},
        optional={
            "encoding": st.sampled_from(["pcm_s16le", "f32le", "u8", ""]),
            "channels": st.integers(-1, 40),
            "station": st.text(max_size=80),
        },
    ),
    frames=st.lists(audio_frames(), max_size=8),
    stop=st.booleans(),
)
@example(  # issue 10: finite samples of 1e19 were scored as a null, normal block
    start={"type": "start", "sample_rate": 16000, "encoding": "f32le"},
    frames=[np.full(16000, 1e19, "<f4").tobytes()],
    stop=True,
)
@FUZZ
def test_audio_sessions_end_cleanly(
    fuzz_server: FuzzServer, start: dict[str, Any], frames: list[bytes], stop: bool
) -> None:
    sent = f"start {start}, {len(frames)} frames of {[len(f) for f in frames]} bytes"
    with _connect(fuzz_server, AUDIO) as ws:
        ws.send(json.dumps(start, allow_nan=True))
        try:
            for frame in frames:
                ws.send(frame)
            if stop:
                ws.send(json.dumps({"type": "stop"}))
        except ConnectionClosed:
            pass  # the server refused the session early; what it said is read below
        if not stop:
            ws.close()
            return
        messages, code = _read_to_close(ws, sent)
    assert messages, f"no message before the close after {sent}"
    assert messages[-1]["type"] in {"end", "error"}, f"{messages[-1]} after {sent}"
    if messages[-1]["type"] == "end":
        assert code == NORMAL, f"end then close {code} after {sent}"


@st.composite
def sensor_frames(draw: st.DrawFn) -> tuple[str, bool]:
    """A text frame and whether it is a valid samples frame."""
    kind = draw(st.sampled_from(["rows", "rows", "rows", "extreme", "json"]))
    if kind == "json":
        return json.dumps(draw(json_values), allow_nan=True), False
    steps = draw(st.integers(0, 250))
    if kind == "extreme":
        value = draw(st.sampled_from([1e200, 1e19, float("nan"), 10**400]))
        rows: list[list[Any]] = [[value] * WINDOWS_CHANNELS for _ in range(steps)]
        return json.dumps({"type": "samples", "samples": rows}, allow_nan=True), False
    rng = np.random.default_rng(steps)
    rows = rng.normal(size=(steps, WINDOWS_CHANNELS)).round(4).tolist()
    return json.dumps({"type": "samples", "samples": rows}), True


@given(frames=st.lists(sensor_frames(), min_size=1, max_size=6))
@example(  # issue 10: a frame that completes no step got no answer
    frames=[(json.dumps({"type": "samples", "samples": [[0.0] * WINDOWS_CHANNELS] * 10}), True)]
)
@example(  # issue 10: the last steps were never scored on stop
    frames=[(json.dumps({"type": "samples", "samples": [[0.0] * WINDOWS_CHANNELS] * 250}), True)]
)
@example(frames=[('{"type": "samples", "samples": ' + "[" * 100_000 + "]" * 100_000 + "}", False)])
@FUZZ
def test_sensor_sessions_answer_every_frame_and_score_every_step(
    fuzz_server: FuzzServer, frames: list[tuple[str, bool]]
) -> None:
    sizes = [len(text) for text, _ in frames]
    sent = f"{len(frames)} sensor frames of {sizes} characters"
    with _connect(fuzz_server, WINDOWS) as ws:
        ws.send(json.dumps({"type": "start"}))
        ready = json.loads(ws.recv(timeout=ANSWER_TIMEOUT_S))
        assert ready["type"] == "ready", ready
        for number, (text, _) in enumerate(frames):
            ws.send(text)
            try:
                answer = json.loads(ws.recv(timeout=LOCKSTEP_S))
            except TimeoutError as exc:
                raise AssertionError(
                    f"no answer to frame {number} within {LOCKSTEP_S} s ({sent}): a "
                    "lock-step client waits forever"
                ) from exc
            except ConnectionClosed as exc:
                raise AssertionError(f"closed without a message after frame {number}") from exc
            check_stream_message(answer, sent)
            assert answer.get("code") != "idle_timeout", f"frame {number} unanswered ({sent})"
            if answer["type"] == "error":
                _read_to_close(ws, sent)
                return
        ws.send(json.dumps({"type": "stop"}))
        messages, code = _read_to_close(ws, sent)
    assert messages, f"no message before the close after {sent}"
    assert messages[-1]["type"] == "end", f"{messages[-3:]} after {sent}"
    end = messages[-1]
    assert code == NORMAL, f"end then close {code} after {sent}"
    if all(valid for _, valid in frames) and end["steps_received"] >= 100:
        assert end["steps_scored"] == end["steps_received"], f"{end} after {sent}"

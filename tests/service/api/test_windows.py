"""POST /v1/models/{name}/windows and sensor frames on the stream endpoint, on a real server
with a real ONNX windows bundle."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from service.bundle.loader import load_bundle
from service.config import Settings
from service.scoring.windows import WindowsScorer
from tests.bundle_factory import make_windows_bundle, sensor_series
from tests.server import LiveServer, running_server
from tests.service.api.streams import read_to_close, stream_connection
from tests.service.clips import small_audio_bundle

WINDOW = 20
CHANNELS = [f"sensor_{i}" for i in range(4)]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    make_windows_bundle(folder / "press", name="press", channels=4, window=WINDOW, stride=5)
    small_audio_bundle(folder / "fan", name="fan", version="1")
    return folder


@pytest.fixture(scope="module")
def server(models: Path) -> Iterator[LiveServer]:
    settings = Settings(models_dir=models, reload_poll_seconds=0, stations=["line-1"])
    with running_server(settings) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


def _scorer(models: Path) -> WindowsScorer:
    return WindowsScorer(load_bundle(models / "press"))


def test_a_series_gets_per_step_verdicts_and_the_channel_behind_its_anomaly(
    client: httpx.Client, models: Path
) -> None:
    series = sensor_series(300, channels=4, seed=3, anomaly=(150, 180, 1))
    response = client.post(
        "/v1/models/press/windows", params={"station": "line-1"}, json=series.tolist()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["steps"], body["window"], body["stride"]) == ("press", 300, 20, 5)
    assert body["channels"] == CHANNELS
    expected = _scorer(models).score(series).scores
    np.testing.assert_allclose(body["scores"], expected, rtol=1e-6)
    flags = np.array(body["anomalies"])
    np.testing.assert_array_equal(flags, expected > body["threshold"])
    assert body["anomaly"] is True
    assert body["anomalous_steps"] == int(flags.sum())
    run = max(body["runs"], key=lambda r: r["end"] - r["start"])
    assert run["start"] <= 155
    assert run["end"] >= 175
    assert run["channels"][0]["name"] == "sensor_1"
    assert run["peak_ratio"] == pytest.approx(run["peak_score"] / body["threshold"])
    metrics = client.get("/metrics").text
    assert 'auscult_scored_total{model="press",source="windows",station="line-1"} 300.0' in metrics


def test_named_columns_may_come_in_any_order(client: httpx.Client) -> None:
    series = sensor_series(120, channels=4, seed=4)
    plain = client.post("/v1/models/press/windows", json=series.tolist()).json()
    order = [2, 0, 3, 1]
    named = client.post(
        "/v1/models/press/windows",
        json={"samples": series[:, order].tolist(), "channels": [CHANNELS[i] for i in order]},
        params={"top_channels": 1},
    ).json()
    np.testing.assert_allclose(named["scores"], plain["scores"], rtol=1e-6)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"[[1, 2, 3, 4]]", 422, "1 steps; the model needs at least one window of 20"),
        (b"[[1, 2, 3]]", 422, "3 channels, the model expects 4"),
        (b"[[1, 2], [1, 2, 3]]", 422, "same number of values, got lengths [2, 3]"),
        (b'{"rows": []}', 422, "expected an object with 'samples'"),
        (b"[[1, 2, null, 4]]", 422, "only numbers"),
        (b"[[1, 2, NaN, 4]]", 422, "readings must be finite"),
        (b"[[1, 2", 422, "not valid JSON"),
        (b'{"samples": [[1, 2, 3, 4]], "channels": ["a"]}', 422, "missing ['sensor_0'"),
    ],
)
def test_bad_series_are_refused_with_what_was_wrong(
    client: httpx.Client, body: bytes, status: int, words: str
) -> None:
    response = client.post(
        "/v1/models/press/windows", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert words in response.json()["detail"]


def test_wrong_model_kind_and_content_type(client: httpx.Client) -> None:
    response = client.post("/v1/models/fan/windows", json=[[1.0]])
    assert response.status_code == 400
    assert "does not score sensor series" in response.json()["detail"]
    response = client.post(
        "/v1/models/press/windows", content=b"1,2,3,4", headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 415
    assert client.post("/v1/models/nope/windows", json=[[1.0]]).status_code == 404


async def _sensor_stream(
    server: LiveServer, start: dict[str, Any], frames: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]], int | None]:
    async with stream_connection(server, "press") as ws:
        await ws.send(json.dumps(start))
        ready = json.loads(await ws.recv())
        for frame in frames:
            await ws.send(frame)
        messages, code = await read_to_close(ws)
    return ready, messages, code


def _frames(series: np.ndarray, sizes: list[int]) -> list[str]:
    frames, position = [], 0
    for size in sizes:
        frames.append(
            json.dumps({"type": "samples", "samples": series[position : position + size].tolist()})
        )
        position += size
    return frames


def test_a_sensor_stream_gives_the_scores_of_the_whole_series(
    server: LiveServer, models: Path
) -> None:
    series = sensor_series(300, channels=4, seed=5, anomaly=(100, 130, 2))
    frames = [*_frames(series, [7, 50, 13, 100, 30, 100]), json.dumps({"type": "stop"})]
    ready, messages, code = asyncio.run(
        _sensor_stream(server, {"type": "start", "station": "line-1"}, frames)
    )
    assert ready["type"] == "ready"
    assert (ready["window"], ready["stride"], ready["channels"]) == (20, 5, CHANNELS)
    assert code == 1000
    *steps, end = messages
    assert all(m["type"] == "steps" for m in steps)
    assert end == {
        "type": "end",
        "steps_received": 300,
        "steps_scored": 300,
        "anomalous_steps": end["anomalous_steps"],
    }
    assert [m["first_step"] for m in steps] == sorted(m["first_step"] for m in steps)
    scores = np.concatenate([m["scores"] for m in steps])
    # Windows every 5 steps end exactly at step 300, so the stream equals the whole series.
    np.testing.assert_allclose(scores, _scorer(models).score(series).scores, rtol=1e-5)
    assert end["anomalous_steps"] == sum(sum(m["anomalies"]) for m in steps) > 0
    names = {c["name"] for m in steps for r in m["runs"] for c in r["channels"][:1]}
    assert "sensor_2" in names


def test_forty_concurrent_sensor_streams_each_get_the_scores_of_their_own_series(
    server: LiveServer, models: Path
) -> None:
    every = [
        sensor_series(100, channels=4, seed=50 + i, anomaly=(40, 60, i % 4)) for i in range(40)
    ]
    stop = json.dumps({"type": "stop"})

    async def all_streams() -> list[tuple[dict[str, Any], list[dict[str, Any]], int | None]]:
        return await asyncio.gather(
            *(
                _sensor_stream(server, {"type": "start"}, [*_frames(s, [10] * 10), stop])
                for s in every
            )
        )

    scorer = _scorer(models)
    for series, (_, messages, code) in zip(every, asyncio.run(all_streams()), strict=True):
        *steps, end = messages
        assert (code, end["steps_scored"]) == (1000, 100)
        scores = np.concatenate([m["scores"] for m in steps])
        np.testing.assert_allclose(scores, scorer.score(series).scores, rtol=1e-5)


@pytest.mark.parametrize(
    ("start", "frames", "code", "close_code", "words"),
    [
        ({"type": "begin"}, [], "bad_start", 1008, "first message must be"),
        (
            {"type": "start"},
            ['{"type": "samples", "samples": [[1, 2]]}'],
            "bad_frame",
            1008,
            "2 channels",
        ),
        ({"type": "start"}, ['{"type": "pause"}'], "protocol", 1008, '{"type": "stop"}'),
        ({"type": "start"}, ["not json"], "protocol", 1008, "not valid JSON"),
        (
            {"type": "start", "channels": ["x"]},
            ['{"type": "samples", "samples": [[1]]}'],
            "bad_frame",
            1008,
            "unknown ['x']",
        ),
    ],
)
def test_sensor_protocol_violations_get_an_error_then_the_close_code(
    server: LiveServer,
    start: dict[str, Any],
    frames: list[str],
    code: str,
    close_code: int,
    words: str,
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int | None]:
        async with stream_connection(server, "press") as ws:
            await ws.send(json.dumps(start))
            for frame in frames:
                await ws.send(frame)
            return await read_to_close(ws)

    messages, closed_with = asyncio.run(scenario())
    error = messages[-1]
    assert (error["type"], error["code"]) == ("error", code)
    assert words in error["message"]
    assert closed_with == close_code


async def _lock_step(
    server: LiveServer, frames: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int | None]:
    """Send each frame only once the previous one was answered, as a lock-step client does;
    a frame left unanswered fails here instead of hanging until the idle timeout."""
    async with stream_connection(server, "press") as ws:
        await ws.send(json.dumps({"type": "start"}))
        assert json.loads(await ws.recv())["type"] == "ready"
        replies = []
        for frame in frames:
            await ws.send(frame)
            replies.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=10)))
        await ws.send(json.dumps({"type": "stop"}))
        closing, code = await read_to_close(ws)
    return replies, closing, code


@pytest.mark.parametrize(("steps", "seed"), [(303, 0), (287, 1), (300, 2)])
def test_a_lock_step_sensor_stream_gets_every_step_scored_as_http_scores_it(
    server: LiveServer, client: httpx.Client, steps: int, seed: int
) -> None:
    series = sensor_series(steps, channels=4, seed=seed, anomaly=(250, 280, 3))
    rng = np.random.default_rng(seed)
    sizes = [3]  # a first frame shorter than one window makes no step final
    while sum(sizes) < steps:
        sizes.append(min(int(rng.integers(1, 40)), steps - sum(sizes)))
    replies, closing, code = asyncio.run(_lock_step(server, _frames(series, sizes)))
    # One steps message per frame, even one that makes no step final.
    assert [r["type"] for r in replies] == ["steps"] * len(sizes)
    assert [r["steps_received"] for r in replies] == np.cumsum(sizes).tolist()
    assert replies[0]["scores"] == []
    *rest, end = closing
    assert code == 1000
    assert [m["type"] for m in rest] == ["steps"]
    messages = [*replies, *rest]
    assert [m["first_step"] for m in messages if m["scores"]] == np.cumsum(
        [0] + [len(m["scores"]) for m in messages if m["scores"]]
    )[:-1].tolist()
    scores = np.concatenate([m["scores"] for m in messages])
    anomalies = [a for m in messages for a in m["anomalies"]]
    # The last steps too, with the window the HTTP path aligns to the end of the series.
    http = client.post("/v1/models/press/windows", json=series.tolist()).json()
    assert scores.shape == (steps,)
    np.testing.assert_allclose(scores, http["scores"], rtol=1e-6)
    assert anomalies == http["anomalies"]
    assert any(anomalies[250:280])
    assert end == {
        "type": "end",
        "steps_received": steps,
        "steps_scored": steps,
        "anomalous_steps": http["anomalous_steps"],
    }


@pytest.mark.parametrize(
    ("value", "words"),
    [
        # Beyond float32: refused as it is read.
        ("1e200", "beyond the range of readings"),
        # Within float32, but its reconstruction error is not: no score to judge.
        ("1e30", "scores are not finite"),
    ],
)
def test_readings_too_large_to_score_are_refused_not_judged(
    client: httpx.Client, value: str, words: str
) -> None:
    rows = sensor_series(40, channels=4, seed=6).tolist()
    body = json.dumps(rows).replace(str(rows[7][1]), value, 1).encode()
    response = client.post(
        "/v1/models/press/windows", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"]


def test_a_sensor_frame_too_large_to_score_ends_the_stream_with_an_error(
    server: LiveServer,
) -> None:
    rows = sensor_series(40, channels=4, seed=6)
    rows[7, 1] = 1e30
    frames = [*_frames(rows, [40]), json.dumps({"type": "stop"})]
    _, messages, code = asyncio.run(_sensor_stream(server, {"type": "start"}, frames))
    assert [m["type"] for m in messages] == ["error"]
    assert messages[0]["code"] == "non_finite"
    assert "scores are not finite" in messages[0]["message"]
    assert code == 1008

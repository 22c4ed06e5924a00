"""The event API on a real server: scoring through /score, /v2 and /windows leaves events;
they can be listed, read, played and labelled, behind the API key (header or the review
page's cookie); a full event queue never fails a scoring request; the store can be off."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.bundle_factory import machine_sound, sensor_series
from tests.server import LiveServer
from tests.service.api.streams import read_to_close, start, stream_connection
from tests.service.clips import RATE, clip
from tests.service.served import fan_and_press, keyed_server

KEY = "event-api-key-0123456789"
CHANNELS = 3
WAV = {"content-type": "audio/wav"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fan_and_press(tmp_path_factory.mktemp("models"), CHANNELS)


def _client(live: LiveServer, key: str | None = KEY) -> httpx.Client:
    return httpx.Client(base_url=live.url, headers={"X-API-Key": key} if key else {}, timeout=30)


def _events(client: httpx.Client, expected: int, **params: Any) -> list[dict[str, Any]]:
    """The events listed once `expected` of them were written (the writer is asynchronous)."""
    deadline = time.monotonic() + 20
    while True:
        response = client.get("/v1/events", params={"limit": 100, **params})
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        if len(events) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def _metric(client: httpx.Client, line_start: str) -> float | None:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_scoring_leaves_events_to_list_play_and_label(models: Path, tmp_path: Path) -> None:
    with (
        keyed_server(
            models, KEY, state_dir=tmp_path / "state", event_normal_audio_fraction=0.0
        ) as live,
        _client(live) as client,
    ):
        normal = client.post("/v1/models/fan/score", content=clip(2.0, seed=3), headers=WAV)
        alarm = client.post(
            "/v1/models/fan/score?station=line-1",
            content=clip(2.0, seed=4, anomalous=True),
            headers=WAV,
        )
        assert (normal.json()["anomaly"], alarm.json()["anomaly"]) == (False, True)
        samples = machine_sound(1.0, seed=5, anomalous=True)
        v2 = client.post(
            "/v2/models/fan/infer",
            json={
                "inputs": [
                    {
                        "name": "samples",
                        "shape": [len(samples)],
                        "datatype": "FP32",
                        "data": samples.tolist(),
                        "parameters": {"sample_rate": RATE},
                    }
                ]
            },
        )
        assert v2.status_code == 200, v2.text
        quiet = sensor_series(100, channels=CHANNELS, seed=3).tolist()  # no false alarm
        assert client.post("/v1/models/press/windows", json=quiet).json()["anomaly"] is False
        faulty = sensor_series(300, channels=CHANNELS, seed=2, anomaly=(150, 190, 1)).tolist()
        assert client.post("/v1/models/press/windows", json=faulty).json()["anomaly"] is True

        # Every clip is an event; a sensor series only with alarms.
        events = _events(client, 4)
        assert sorted(e["source"] for e in events) == ["clip", "clip", "v2", "windows"]
        by_source = {(e["source"], e["verdict"]): e for e in events}
        clip_alarm = by_source[("clip", "anomaly")]
        assert clip_alarm["station"] == "line-1"
        assert clip_alarm["score"] == pytest.approx(alarm.json()["score"])
        assert clip_alarm["threshold"] == pytest.approx(alarm.json()["threshold"])
        assert clip_alarm["version"] == "1"
        assert clip_alarm["evidence"] is True
        assert clip_alarm["worst"]["band_hz"] > 0
        assert by_source[("clip", "normal")]["evidence"] is False
        assert by_source[("windows", "anomaly")]["kind"] == "sensor"
        # The review page shows every kind of alarm: the sensor one with its channels.
        review = client.get("/ui/review")
        assert review.status_code == 200
        channels = by_source[("windows", "anomaly")]["worst"]["channels"]
        assert f"channels: {channels[0][0]}" in review.text
        assert review.text.count("<article") == 3

        detail = client.get(f"/v1/events/{clip_alarm['id']}").json()["detail"]
        assert [b[2] for b in detail["blocks"]] == pytest.approx(
            [b["score"] for b in alarm.json()["blocks"]]
        )
        audio = client.get(f"/v1/events/{clip_alarm['id']}/audio")
        assert audio.headers["content-type"] == "audio/flac"
        played, rate = sf.read(io.BytesIO(audio.content))
        assert (rate, len(played)) == (RATE, 2 * RATE)
        normal_id = by_source[("clip", "normal")]["id"]
        assert client.get(f"/v1/events/{normal_id}/audio").status_code == 404

        labelled = client.put(
            f"/v1/events/{clip_alarm['id']}/label",
            json={"label": "anomaly", "note": "bearing", "by": "ana"},
        )
        assert labelled.status_code == 200, labelled.text
        assert (labelled.json()["label"], labelled.json()["labelled_by"]) == ("anomaly", "ana")
        v2_alarm = by_source[("v2", "anomaly")]
        client.put(f"/v1/events/{v2_alarm['id']}/label", json={"label": "normal"})
        assert _metric(client, 'auscult_alarm_precision{model="fan"}') == 0.5
        assert [e["id"] for e in _events(client, 1, label="anomaly")] == [clip_alarm["id"]]

        assert (
            client.put(f"/v1/events/{'0' * 32}/label", json={"label": "normal"}).status_code == 404
        )
        bad_label = client.put(f"/v1/events/{clip_alarm['id']}/label", json={"label": "maybe"})
        assert bad_label.status_code == 422
        assert client.get("/v1/events/not-an-id").status_code == 422
        assert client.get("/v1/events", params={"cursor": "garbage"}).status_code == 422
        assert client.get("/v1/events", params={"limit": 501}).status_code == 422


def test_event_routes_need_the_key_in_a_header_or_the_review_cookie(
    models: Path, tmp_path: Path
) -> None:
    with keyed_server(models, KEY, state_dir=tmp_path / "state") as live:
        with _client(live) as client:
            client.post("/v1/models/fan/score", content=clip(1.0, anomalous=True), headers=WAV)
            event_id = _events(client, 1)[0]["id"]
        routes = [
            ("GET", "/v1/events"),
            ("GET", f"/v1/events/{event_id}"),
            ("GET", f"/v1/events/{event_id}/audio"),
            ("PUT", f"/v1/events/{event_id}/label"),
            ("GET", "/ui/review"),
        ]
        with _client(live, key=None) as anonymous, _client(live, key="w" * 24) as wrong:
            for method, path in routes:
                assert anonymous.request(method, path, json={"label": "normal"}).status_code == 401
                assert wrong.request(method, path, json={"label": "normal"}).status_code == 401
            assert anonymous.get("/ui/review", params={"api_key": "w" * 24}).status_code == 401
        with _client(live, key=None) as browser:
            opened = browser.get("/ui/review", params={"api_key": KEY})
            assert opened.status_code == 303
            assert "api_key" not in opened.headers["location"]
            assert "httponly" in opened.headers["set-cookie"].lower()
            assert browser.get("/ui/review").status_code == 200
            assert browser.get(f"/v1/events/{event_id}/audio").status_code == 200


def test_full_event_queue_drops_events_and_never_fails_a_request(
    models: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with (
        # A generous admission limit: a 503 for load on a busy test host is not what is tested.
        keyed_server(
            models, KEY, state_dir=state, event_queue_size=1, max_queue_wait_seconds=60
        ) as live,
        _client(live) as client,
    ):
        holder = sqlite3.connect(state / "events.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # the writer waits on it: the queue fills
        try:
            # Until the queue of one overflows: how many requests that takes depends on when
            # the writer takes its batch, not on what is tested.
            requests, full = 0, 0.0
            while not full and requests < 200:
                response = client.post(
                    "/v1/models/fan/score", content=clip(1.0, seed=requests), headers=WAV
                )
                assert response.status_code == 200, response.text
                requests += 1
                full = _metric(client, 'auscult_events_dropped_total{reason="queue_full"}') or 0
            assert full >= 1
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        # Every event is written or counted as dropped (a batch that waited on the lock past
        # SQLite's busy timeout is a write_error).
        deadline = time.monotonic() + 30
        while True:
            written = len(_events(client, 0))
            failed = _metric(client, 'auscult_events_dropped_total{reason="write_error"}') or 0
            full = _metric(client, 'auscult_events_dropped_total{reason="queue_full"}') or 0
            if written + failed + full >= requests or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (written, failed, full) == (requests - failed - full, failed, full)


def test_store_off_keeps_nothing_and_scoring_works(models: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with (
        keyed_server(models, KEY, state_dir=state, events_enabled=False) as live,
        _client(live) as client,
    ):
        assert (
            client.post("/v1/models/fan/score", content=clip(1.0), headers=WAV).status_code == 200
        )
        assert client.get("/v1/events").status_code == 404
        assert client.get("/ui/review").status_code == 404
    assert not state.exists()


async def _stream(live: LiveServer, sound: np.ndarray) -> list[dict[str, Any]]:
    async with stream_connection(live, headers={"X-API-Key": KEY}) as ws:
        assert (await start(ws, station="line-2"))["type"] == "ready"
        pcm = (np.clip(sound, -1, 1) * 32767).astype("<i2").tobytes()
        for offset in range(0, len(pcm), RATE):
            await ws.send(pcm[offset : offset + RATE])
        await ws.send(json.dumps({"type": "stop"}))
        messages, _ = await read_to_close(ws)
    return messages


def test_an_alarmed_stretch_of_a_stream_is_an_event_with_its_audio(
    models: Path, tmp_path: Path
) -> None:
    sound = np.concatenate([machine_sound(2.0, seed=6), machine_sound(2.0, seed=7, anomalous=True)])
    with keyed_server(models, KEY, state_dir=tmp_path / "state") as live, _client(live) as client:
        messages = asyncio.run(_stream(live, sound))
        blocks = [m for m in messages if m["type"] == "score"]
        assert blocks[-1]["anomaly"]  # the stream ends in an alarm: `stop` closes its stretch
        events = _events(client, 1, source="stream")
        stretches = [e for e in events if e["source"] == "stream"]
        assert stretches
        last = max(stretches, key=lambda event: event["span_end"])
        assert last["station"] == "line-2"
        assert last["span_end"] == pytest.approx(blocks[-1]["end_s"])
        # The stream's event names the worst band of its peak block, as a clip's does.
        detail = client.get(f"/v1/events/{last['id']}").json()["detail"]
        assert last["worst"]["band_hz"] == detail["band_hz"][last["worst"]["band"]]
        assert last["worst"]["band"] == max(
            range(len(detail["band_error"])), key=detail["band_error"].__getitem__
        )
        played, rate = sf.read(io.BytesIO(client.get(f"/v1/events/{last['id']}/audio").content))
        assert len(played) / rate == pytest.approx(last["span_end"] - last["span_start"], abs=0.01)

"""A real UAV flight (FLAC) streamed as PCM chunks over a real Mosquitto broker: the block
verdicts the bridge publishes equal those of POST /score on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from service.audio.decode import decode_audio
from service.bundle.loader import load_bundle
from service.bundle.manifest import AudioManifest, read_manifest
from service.config import Settings
from service.events.queries import EventFilter, list_events
from service.mqtt.settings import MqttSettings
from service.scoring.audio import AudioScorer
from tests.realdata import real_data
from tests.server import LiveServer, running_server
from tests.service.clips import small_audio_bundle
from tests.service.mqtt.broker import Mosquitto
from tests.service.mqtt.clients import Collector, Device, RunningBridge, running_bridge

pytestmark = pytest.mark.real_data

FLIGHT = "audio/uav_propeller/3_4_broken/4_broken_1111_ccw_f8_1.flac"
CHUNK_SECONDS = 0.25
OUT = "auscult/out/uav"


@pytest.fixture(scope="module")
def flight() -> Path:
    return real_data(FLIGHT)


def uav_bundle(folder: Path, flight: Path) -> Path:
    """A small audio bundle whose block threshold flags the 20 % highest blocks of the flight:
    fitted to generated hum, it finds every block of real flight audio unusual otherwise."""
    probe = small_audio_bundle(folder / "probe", name="uav")
    manifest = read_manifest(probe)
    assert isinstance(manifest, AudioManifest)
    samples = decode_audio(flight.read_bytes()).samples
    blocks = AudioScorer(load_bundle(probe)).score_samples(samples).block_scores
    scale = float(np.quantile(blocks, 0.8)) / manifest.block_decision.threshold
    return small_audio_bundle(folder / "models" / "uav", name="uav", threshold_scale=scale)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, flight: Path) -> Settings:
    bundle = uav_bundle(tmp_path_factory.mktemp("bundles"), flight)
    return Settings(
        models_dir=bundle.parent,
        reload_poll_seconds=0,
        state_dir=tmp_path_factory.mktemp("state"),
    )


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[LiveServer]:
    with running_server(settings) as live:
        yield live


@pytest.fixture(scope="module")
def bridge(settings: Settings, broker: Mosquitto) -> Iterator[RunningBridge]:
    # Two chunks may wait per stream: the flight arrives faster than that, so routing waits
    # for scoring (back-pressure) and nothing may be dropped.
    mqtt = MqttSettings(port=broker.port, client_id="bridge-audio", stream_backlog=2)
    with running_bridge(settings, mqtt) as running:
        yield running


def clip_verdicts(server: LiveServer, flight: Path) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/v1/models/uav/score",
        content=flight.read_bytes(),
        headers={"Content-Type": "audio/flac"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_real_flight_as_pcm_chunks_gets_the_block_verdicts_of_score(
    bridge: RunningBridge, server: LiveServer, broker: Mosquitto, flight: Path
) -> None:
    clip = clip_verdicts(server, flight)
    expected = clip["blocks"]
    assert 0 < sum(b["anomaly"] for b in expected) < len(expected)
    pcm, rate = sf.read(flight, dtype="int16")
    assert rate == 16000  # the default rate of an `audio` topic
    collector = Collector(broker.port, f"{OUT}/#")
    device = Device(broker.port)
    try:
        chunk = int(rate * CHUNK_SECONDS)
        for start in range(0, pcm.size, chunk):
            device.publish(
                "auscult/in/uav/drone-1/audio", pcm[start : start + chunk].astype("<i2").tobytes()
            )
        device.publish("auscult/in/uav/drone-1/audio", b"")
        collector.wait_for(f"{OUT}/drone-1/verdicts", lambda m: m["type"] == "end")
        blocks = {
            block["index"]: block
            for message in collector.messages(f"{OUT}/drone-1/verdicts")
            if message["type"] == "blocks"
            for block in message["blocks"]
        }
        alarms = collector.messages(f"{OUT}/drone-1/alarms")
    finally:
        collector.close()
        device.close()
    published = [blocks[i] for i in sorted(blocks)]
    assert [b["index"] for b in published] == [b["index"] for b in expected]
    assert [b["anomaly"] for b in published] == [b["anomaly"] for b in expected]
    assert [b["score"] for b in published] == pytest.approx(
        [b["score"] for b in expected], rel=1e-4
    )
    assert [b["start_s"] for b in published] == pytest.approx([b["start_s"] for b in expected])
    flagged = {b["index"] for b in expected if b["anomaly"]}
    assert {i for alarm in alarms for i in range(alarm["start"], alarm["end"])} == flagged
    assert all(alarm["threshold"] == clip["block_threshold"] for alarm in alarms)
    # The alarm holding the clip's worst block names that block's worst bands, as /score does.
    worst = clip["worst_block"]
    errors = np.asarray(worst["band_error"])
    top = [int(b) for b in np.argsort(errors)[::-1][:3]]
    (alarm,) = [a for a in alarms if a["start"] <= worst["index"] < a["end"]]
    assert [band["band"] for band in alarm["bands"]] == top
    assert [band["hz"] for band in alarm["bands"]] == pytest.approx(
        [worst["band_hz"][b] for b in top]
    )
    assert [band["error"] for band in alarm["bands"]] == pytest.approx(
        [errors[b] for b in top], rel=1e-3
    )
    # Every alarmed block is also in an event of the store, where operators label it (a
    # stretch of consecutive alarmed blocks is one event), with the stream's audio.
    assert bridge.events is not None
    bridge.events.writer.flush()
    stretches = []
    cursor = None
    while True:
        page = list_events(bridge.events.engine, EventFilter(model="uav"), limit=500, cursor=cursor)
        stretches += [e for e in page.events if e.source == "stream"]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    in_events = {
        b["index"]
        for b in published
        for e in stretches
        if e.span_start - 1e-6 <= b["start_s"] and b["end_s"] <= e.span_end + 1e-6
    }
    assert in_events == flagged
    assert all(e.station == "drone-1" for e in stretches)
    assert all(e.evidence_path for e in stretches)

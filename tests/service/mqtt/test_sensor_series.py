"""A real SMD series published to a real Mosquitto broker, as JSON frames and as binary rows: the
verdicts the bridge publishes equal the `/windows` verdicts of the same series from a real
server, also when the broker restarts mid-series."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import generate_latest

from service.bundle.loader import load_bundle
from service.bundle.manifest import read_manifest
from service.config import Settings
from service.mqtt.payloads import encode_f32_rows
from service.mqtt.settings import MqttSettings
from service.scoring.windows import WindowsScorer
from tests.bundle_factory import make_windows_bundle
from tests.realdata import real_data
from tests.server import LiveServer, running_server
from tests.service.mqtt.broker import Mosquitto
from tests.service.mqtt.clients import Collector, Device, RunningBridge, running_bridge
from tests.service.priorities import linux_only, lowered, priority_of

pytestmark = pytest.mark.real_data

MACHINE = "machine-1-2"
# Rows 4000-6399 of the machine's test series hold three labelled anomalies.
FIRST_ROW, ROWS = 4000, 2400
FRAME_ROWS = 150
IN, OUT = "auscult/in/smd", "auscult/out/smd"


@pytest.fixture(scope="module")
def series() -> np.ndarray:
    path = real_data("timeseries/SMD") / "test" / f"{MACHINE}.txt.gz"
    rows: np.ndarray = np.loadtxt(path, delimiter=",")[FIRST_ROW : FIRST_ROW + ROWS]
    return rows


def smd_bundle(folder: Path, series: np.ndarray) -> Path:
    """A small linear windows bundle whose threshold flags the 10 % highest steps of the series:
    fitted to generated readings, it finds every real step unusual at its own threshold."""
    shape = {"name": "smd", "channels": series.shape[1], "window": 50, "stride": 10}
    probe = make_windows_bundle(folder / "probe", **shape)
    detector = WindowsScorer(load_bundle(probe))
    threshold = read_manifest(probe).step_threshold(None)  # type: ignore[union-attr]
    scale = float(np.quantile(detector.score(series).scores, 0.9)) / threshold
    return make_windows_bundle(folder / "models" / "smd", **shape, threshold_scale=scale)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, series: np.ndarray) -> Settings:
    bundle = smd_bundle(tmp_path_factory.mktemp("bundles"), series)
    return Settings(models_dir=bundle.parent, reload_poll_seconds=0)


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[LiveServer]:
    with running_server(settings) as live:
        yield live


@pytest.fixture(scope="module")
def bridge(settings: Settings, broker: Mosquitto) -> Iterator[RunningBridge]:
    # The bridge waits 3 s before reconnecting, the devices 1 s: after a broker restart the rest
    # of a series reaches the broker while the bridge is away, and waits in its session.
    mqtt = MqttSettings(
        port=broker.port,
        client_id="bridge-sensor",
        reconnect_min_seconds=3.0,
        reconnect_max_seconds=3.0,
    )
    with running_bridge(settings, mqtt) as running:
        yield running


@pytest.fixture
def collector(broker: Mosquitto) -> Iterator[Collector]:
    collecting = Collector(broker.port, f"{OUT}/#")
    yield collecting
    collecting.close()


@pytest.fixture
def device(broker: Mosquitto) -> Iterator[Device]:
    publishing = Device(broker.port)
    yield publishing
    publishing.close()


def windows_verdicts(server: LiveServer, rows: np.ndarray) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/v1/models/smd/windows", json=rows.tolist(), timeout=60)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def published_steps(collector: Collector, device: str) -> dict[str, np.ndarray]:
    """The steps of every verdicts message up to `end`, each step once (a QoS-1 message may
    come twice), checked to cover the series from step 0 without a gap."""
    topic = f"{OUT}/{device}/verdicts"
    collector.wait_for(topic, lambda m: m["type"] == "end")
    by_first: dict[int, dict[str, Any]] = {}
    for message in collector.messages(topic):
        if message["type"] == "steps":
            by_first[message["first_step"]] = message
    scores: list[float] = []
    ratios: list[float] = []
    anomalies: list[bool] = []
    for first in sorted(by_first):
        assert first == len(scores), f"a gap before step {first}"
        scores += by_first[first]["scores"]
        ratios += by_first[first]["ratios"]
        anomalies += by_first[first]["anomalies"]
    return {
        "scores": np.array(scores),
        "ratios": np.array(ratios),
        "anomalies": np.array(anomalies),
    }


def alarmed_steps(collector: Collector, device: str) -> set[int]:
    alarms = collector.messages(f"{OUT}/{device}/alarms")
    return {step for alarm in alarms for step in range(alarm["start"], alarm["end"])}


def check_equal(published: dict[str, np.ndarray], expected: dict[str, Any]) -> None:
    np.testing.assert_array_equal(published["anomalies"], expected["anomalies"])
    np.testing.assert_allclose(published["scores"], expected["scores"], rtol=1e-6)
    np.testing.assert_allclose(
        published["ratios"], np.array(expected["scores"]) / expected["threshold"], rtol=1e-6
    )


def json_frames(rows: np.ndarray, first_seq: int = 0) -> list[str]:
    return [
        json.dumps({"samples": rows[i : i + FRAME_ROWS].tolist(), "seq": first_seq + n})
        for n, i in enumerate(range(0, len(rows), FRAME_ROWS))
    ]


def test_json_frames_of_a_real_series_get_the_windows_verdicts(
    bridge: RunningBridge,
    server: LiveServer,
    series: np.ndarray,
    collector: Collector,
    device: Device,
) -> None:
    expected = windows_verdicts(server, series)
    # A real test of verdicts needs both kinds in the series.
    assert 0 < sum(expected["anomalies"]) < len(series)
    for frame in json_frames(series):
        device.publish(f"{IN}/press-1/sensor", frame)
    device.publish(f"{IN}/press-1/sensor", json.dumps({"end": True}))
    published = published_steps(collector, "press-1")
    assert len(published["scores"]) == len(series)
    check_equal(published, expected)
    flagged = set(np.flatnonzero(expected["anomalies"]).tolist())
    assert alarmed_steps(collector, "press-1") == flagged
    end = collector.wait_for(f"{OUT}/press-1/verdicts", lambda m: m["type"] == "end")
    assert (end["model"], end["version"], end["device"]) == ("smd", "1", "press-1")
    assert (end["verdicts"], end["anomalies"]) == (len(series), len(flagged))
    metrics = generate_latest(bridge.metrics.registry).decode()
    assert 'auscult_scored_total{model="smd",source="stream",station="other"} 2400.0' in metrics


def test_binary_rows_get_the_windows_verdicts_of_the_float32_series(
    bridge: RunningBridge,
    server: LiveServer,
    series: np.ndarray,
    collector: Collector,
    device: Device,
) -> None:
    as_sent = series.astype(np.float32).astype(np.float64)
    expected = windows_verdicts(server, as_sent)
    for start in range(0, len(series), FRAME_ROWS):
        device.publish(
            f"{IN}/press-2/sensor/f32", encode_f32_rows(as_sent[start : start + FRAME_ROWS])
        )
    device.publish(f"{IN}/press-2/sensor/f32", b"")
    check_equal(published_steps(collector, "press-2"), expected)


def test_a_broker_restart_mid_series_loses_no_verdict(
    bridge: RunningBridge,
    server: LiveServer,
    broker: Mosquitto,
    series: np.ndarray,
    collector: Collector,
    device: Device,
) -> None:
    expected = windows_verdicts(server, series)
    frames = json_frames(series)
    half = len(frames) // 2
    for frame in frames[:half]:
        device.publish(f"{IN}/press-3/sensor", frame)
    broker.restart()
    for frame in frames[half:]:
        device.publish(f"{IN}/press-3/sensor", frame)
    device.publish(f"{IN}/press-3/sensor", json.dumps({"end": True}))
    published = published_steps(collector, "press-3")
    assert len(published["scores"]) == len(series)
    check_equal(published, expected)
    text = generate_latest(bridge.metrics.registry).decode()
    assert "auscult_mqtt_reconnects_total 1.0" in text


@linux_only
def test_the_bridge_scores_below_its_event_loop(
    bridge: RunningBridge,
    settings: Settings,
    series: np.ndarray,
    collector: Collector,
    device: Device,
) -> None:
    for frame in json_frames(series[: 2 * FRAME_ROWS]):
        device.publish(f"{IN}/press-2/sensor", frame)
    device.publish(f"{IN}/press-2/sensor", json.dumps({"end": True}))
    assert len(published_steps(collector, "press-2")["scores"]) == 2 * FRAME_ROWS
    scoring = [t for t in threading.enumerate() if t.name.startswith("auscult-mqtt")]
    assert scoring
    # The bridge's loop thread was started by this one, at its priority.
    expected = lowered(priority_of(), settings.worker_threads_nice)
    assert {priority_of(thread) for thread in scoring} == {expected}

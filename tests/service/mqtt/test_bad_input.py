"""Input the bridge refuses: each bad message gets an error on the error topic saying what was
wrong, and the bridge, and the stream a bad frame arrived in, carry on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import generate_latest

from service.bundle.loader import load_bundle
from service.config import Settings
from service.mqtt.payloads import encode_f32_rows
from service.mqtt.settings import MqttSettings
from service.scoring.windows import WindowsScorer
from tests.bundle_factory import make_windows_bundle, sensor_series
from tests.service.clips import small_audio_bundle
from tests.service.mqtt.broker import Mosquitto
from tests.service.mqtt.clients import Collector, Device, RunningBridge, running_bridge

ERRORS = "auscult/out/errors"
MAX_PAYLOAD = 16384


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    make_windows_bundle(folder / "press", name="press", channels=4, window=20, stride=5)
    small_audio_bundle(folder / "fan", name="fan")
    return folder


@pytest.fixture(scope="module")
def bridge(models: Path, broker: Mosquitto) -> Iterator[RunningBridge]:
    mqtt = MqttSettings(port=broker.port, client_id="bridge-bad", max_payload_bytes=MAX_PAYLOAD)
    with running_bridge(Settings(models_dir=models, reload_poll_seconds=0), mqtt) as running:
        yield running


@pytest.fixture
def collector(broker: Mosquitto) -> Iterator[Collector]:
    collecting = Collector(broker.port, "auscult/out/#")
    yield collecting
    collecting.close()


@pytest.fixture
def device(broker: Mosquitto) -> Iterator[Device]:
    publishing = Device(broker.port)
    yield publishing
    publishing.close()


ROW = json.dumps({"samples": [[1.0, 2.0, 3.0, 4.0]]})


@pytest.mark.parametrize(
    ("topic", "payload", "code", "words"),
    [
        ("auscult/in/press/d1", ROW, "bad_topic", "must be auscult/in/<model>/<device>/"),
        ("auscult/in/press/d2/video", ROW, "bad_topic", "must end in sensor, sensor/f32"),
        ("auscult/in/press/d3/sensor", "not json", "bad_payload", "not valid JSON"),
        ("auscult/in/press/d4/sensor", '{"samples": [[1, NaN, 3, 4]]}', "bad_payload", "finite"),
        ("auscult/in/press/d5/sensor", '{"samples": [[1, 2, 3]]}', "bad_payload", "expects 4"),
        ("auscult/in/press/d6/sensor", '{"rows": []}', "bad_payload", "rows: Extra inputs"),
        ("auscult/in/press/d7/sensor", '{"samples": [[1,2,3,4]], "device": "a/b"}', "bad_payload",
         "without '/'"),
        ("auscult/in/press/d8/sensor/f32", b"\x00" * 5, "bad_payload", "multiple of 16 bytes"),
        ("auscult/in/absent/d9/sensor", ROW, "unknown_model", "no model 'absent' is served"),
        ("auscult/in/fan/d10/sensor", ROW, "wrong_kind", "scores audio, not sensor frames"),
        ("auscult/in/press/d11/audio", b"\x00\x00" * 800, "wrong_kind", "not audio"),
        ("auscult/in/fan/d12/audio", b"\x00" * 3, "bad_payload", "does not hold whole samples"),
        ("auscult/in/fan/d13/audio/7", b"\x00\x00" * 800, "bad_rate", "7 Hz"),
        ("auscult/in/fan/d14/audio", b"\x00" * (MAX_PAYLOAD + 2), "too_large", "over 16384"),
    ],
)  # fmt: skip
def test_bad_input_gets_an_error_naming_what_was_wrong(
    bridge: RunningBridge,
    collector: Collector,
    device: Device,
    topic: str,
    payload: str | bytes,
    code: str,
    words: str,
) -> None:
    device.publish(topic, payload)
    error = collector.wait_for(ERRORS, lambda m: m["topic"] == topic)
    assert (error["type"], error["code"]) == ("error", code)
    assert words in error["message"]
    assert (
        f'auscult_mqtt_messages_dropped_total{{reason="{code}"}}'
        in generate_latest(bridge.metrics.registry).decode()
    )


def _steps(collector: Collector, topic: str) -> np.ndarray:
    collector.wait_for(topic, lambda m: m["type"] == "end")
    scores: dict[int, float] = {}
    for message in collector.messages(topic):
        if message["type"] == "steps":
            for offset, score in enumerate(message["scores"]):
                scores[message["first_step"] + offset] = score
    assert sorted(scores) == list(range(len(scores)))
    return np.array([scores[i] for i in range(len(scores))])


def test_a_stream_carries_on_past_a_bad_frame(
    bridge: RunningBridge, models: Path, collector: Collector, device: Device
) -> None:
    series = sensor_series(120, channels=4, seed=5)
    topic = "auscult/in/press/carry-on/sensor"
    device.publish(topic, json.dumps({"samples": series[:70].tolist()}))
    device.publish(topic, '{"samples": [[1, 2, 3, 4], [1, 2]]}')
    device.publish(topic, json.dumps({"samples": series[70:].tolist(), "end": True}))
    error = collector.wait_for(ERRORS, lambda m: m["topic"] == topic)
    assert "same number of values" in error["message"]
    expected = WindowsScorer(load_bundle(models / "press")).score(series).scores
    published = _steps(collector, "auscult/out/press/carry-on/verdicts")
    np.testing.assert_allclose(published, expected, rtol=1e-6)


def test_a_redelivered_seq_is_dropped_once(
    bridge: RunningBridge, models: Path, collector: Collector, device: Device
) -> None:
    series = sensor_series(90, channels=4, seed=6)
    topic = "auscult/in/press/redelivered/sensor"
    frames = [(0, series[:30]), (1, series[30:60]), (1, series[30:60]), (2, series[60:])]
    for seq, rows in frames:
        device.publish(topic, json.dumps({"samples": rows.tolist(), "seq": seq}))
    device.publish(topic, json.dumps({"end": True}))
    expected = WindowsScorer(load_bundle(models / "press")).score(series).scores
    published = _steps(collector, "auscult/out/press/redelivered/verdicts")
    np.testing.assert_allclose(published, expected, rtol=1e-6)
    text = generate_latest(bridge.metrics.registry).decode()
    assert 'auscult_mqtt_messages_dropped_total{reason="duplicate"} 1.0' in text


def test_the_device_field_splits_one_topic_into_streams(
    bridge: RunningBridge, models: Path, collector: Collector, device: Device
) -> None:
    first, second = sensor_series(80, channels=4, seed=7), sensor_series(80, channels=4, seed=8)
    topic = "auscult/in/press/gateway/sensor"
    for start in range(0, 80, 20):
        for name, series in (("left", first), ("right", second)):
            rows = series[start : start + 20].tolist()
            device.publish(topic, json.dumps({"samples": rows, "device": name}))
    for name in ("left", "right"):
        device.publish(topic, json.dumps({"device": name, "end": True}))
    scorer = WindowsScorer(load_bundle(models / "press"))
    for name, series in (("left", first), ("right", second)):
        published = _steps(collector, f"auscult/out/press/{name}/verdicts")
        np.testing.assert_allclose(published, scorer.score(series).scores, rtol=1e-6)


def test_binary_rows_in_named_order_and_the_bridge_after_bad_input(
    bridge: RunningBridge, models: Path, collector: Collector, device: Device
) -> None:
    series = sensor_series(60, channels=4, seed=9).astype(np.float32)
    device.publish("auscult/in/press/after/sensor/f32", b"\x01")
    device.publish("auscult/in/press/after/sensor/f32", encode_f32_rows(series))
    device.publish("auscult/in/press/after/sensor/f32", b"")
    expected = WindowsScorer(load_bundle(models / "press")).score(series).scores
    published = _steps(collector, "auscult/out/press/after/verdicts")
    np.testing.assert_allclose(published, expected, rtol=1e-6)

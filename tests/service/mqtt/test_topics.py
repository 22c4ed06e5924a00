"""The topic layout and the settings that shape it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.mqtt.settings import MqttSettings
from service.mqtt.topics import StreamKey, TopicError, TopicLayout

LAYOUT = TopicLayout("plant/in", "plant/out", 16000)


@pytest.mark.parametrize(
    ("topic", "key"),
    [
        ("plant/in/press/p1/sensor", StreamKey("press", "p1", "sensor")),
        ("plant/in/press/p1/sensor/f32", StreamKey("press", "p1", "sensor_f32")),
        ("plant/in/fan/f1/audio", StreamKey("fan", "f1", "audio", 16000)),
        ("plant/in/fan/f1/audio/44100", StreamKey("fan", "f1", "audio", 44100)),
    ],
)
def test_input_topics_name_their_stream(topic: str, key: StreamKey) -> None:
    assert LAYOUT.parse(topic) == key


@pytest.mark.parametrize(
    "topic",
    [
        "other/in/press/p1/sensor",
        "plant/in/press/sensor",
        "plant/in/press/p1/audio/0",
        "plant/in/press/p1/audio/fast",
        "plant/in/press/p1/sensor/f64",
        "plant/in//p1/sensor",
    ],
)
def test_topics_off_the_layout_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        LAYOUT.parse(topic)


def test_results_go_beside_the_stream_and_errors_to_one_topic() -> None:
    key = StreamKey("press", "p1", "sensor")
    assert LAYOUT.results(key, "verdicts") == "plant/out/press/p1/verdicts"
    assert LAYOUT.results(key, "alarms") == "plant/out/press/p1/alarms"
    assert LAYOUT.errors == "plant/out/errors"
    assert LAYOUT.subscription == "plant/in/#"


def test_settings_refuse_prefixes_that_would_feed_results_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUSCULT_MQTT_PORT", "1884")
    assert MqttSettings().port == 1884
    with pytest.raises(ValidationError, match="must not contain one another"):
        MqttSettings(input_prefix="plant", output_prefix="plant/out")
    with pytest.raises(ValidationError, match="no wildcard"):
        MqttSettings(input_prefix="plant/+/in")

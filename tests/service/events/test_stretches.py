"""Alarmed stretches of real streams become events: the audio or sensor stream pipelines, fed
frame by frame, hand one event per run of alarms, with the input of that run as evidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.bundle.loader import load_bundle
from service.events.records import NewEvent
from service.metrics import Metrics
from service.pipelines.audio_stream import AudioStream
from service.pipelines.sensor_stream import SensorStream
from service.scoring.audio import AudioScorer
from service.scoring.detectors import AudioDetector, OperatingPointChoice, WindowsDetector
from service.scoring.windows import WindowsScorer
from tests.bundle_factory import machine_sound, make_windows_bundle, sensor_series
from tests.service.clips import RATE, small_audio_bundle


class KeptEvents:
    """An event sink that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[NewEvent] = []

    def submit(self, event: NewEvent) -> bool:
        self.events.append(event)
        return True


def test_audio_stream_alarm_stretch_is_one_event_with_its_audio(tmp_path: Path) -> None:
    bundle = load_bundle(small_audio_bundle(tmp_path / "fan", name="fan"))
    detector = AudioDetector.at(AudioScorer(bundle), OperatingPointChoice())
    sink = KeptEvents()
    stream = AudioStream(
        detector,
        sample_rate=RATE,
        encoding="pcm_s16le",
        channels=1,
        min_rate=8000,
        max_rate=48000,
        max_resample_factor=20000,
        metrics=Metrics(),
        station="line-1",
        events=sink,
    )
    sound = np.concatenate(
        [
            machine_sound(3.0, seed=1),
            machine_sound(2.0, seed=2, anomalous=True),
            machine_sound(3.0, seed=3),
        ]
    )
    pcm = (np.clip(sound, -1, 1) * 32767).astype("<i2").tobytes()
    frame = RATE // 4 * 2
    verdicts = []
    for start in range(0, len(pcm), frame):
        verdicts += stream.push(pcm[start : start + frame])
    verdicts += stream.finish()
    alarmed = [v for v in verdicts if v.anomaly]
    assert alarmed
    # One event per run of consecutive alarmed blocks.
    runs = sum(
        1 for i, v in enumerate(verdicts) if v.anomaly and (i == 0 or not verdicts[i - 1].anomaly)
    )
    assert len(sink.events) == runs
    strongest = max(sink.events, key=lambda event: event.score)
    assert strongest.score == max(v.score for v in alarmed)
    assert (strongest.kind, strongest.source, strongest.station) == ("audio", "stream", "line-1")
    # The worst band is that of the peak block, as a clip's event names it.
    peak = max(alarmed, key=lambda v: v.score)
    assert peak.band_error is not None
    assert strongest.detail["band_error"] == pytest.approx(peak.band_error.tolist())
    assert strongest.worst["band"] == int(np.argmax(peak.band_error))
    assert strongest.span_start >= 2.5
    assert strongest.span_end <= 5.5
    assert strongest.audio is not None
    span = strongest.span_end - strongest.span_start
    assert abs(len(strongest.audio) / RATE - span) < 0.05
    # The audio is the stream's own, at the stretch's place.
    start = int(strongest.span_start * RATE)
    sent = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    assert np.allclose(strongest.audio, sent[start : start + len(strongest.audio)], atol=1e-4)


def test_sensor_stream_alarm_stretch_is_one_event_with_its_window(tmp_path: Path) -> None:
    bundle = load_bundle(
        make_windows_bundle(tmp_path / "press", name="press", channels=3, window=20, stride=5)
    )
    detector = WindowsDetector.at(WindowsScorer(bundle), OperatingPointChoice())
    sink = KeptEvents()
    stream = SensorStream(
        detector, columns=None, max_steps=10_000, metrics=Metrics(), station=None, events=sink
    )
    series = sensor_series(600, anomaly=(300, 340, 1))
    verdicts = []
    for start in range(0, len(series), 37):
        verdicts.append(stream.push(series[start : start + 37].tolist()))
    verdicts.append(stream.finish())
    anomalies = np.concatenate([v.anomalies for v in verdicts])
    runs = int(np.sum(anomalies[1:] & ~anomalies[:-1]) + anomalies[0])
    assert runs >= 1
    assert len(sink.events) == runs
    strongest = max(sink.events, key=lambda event: event.score)
    assert strongest.kind == "sensor"
    assert strongest.window is not None
    first, end = int(strongest.span_start), int(strongest.span_end)
    assert first <= 340
    assert end >= 300
    # The window holds the readings from a window before the stretch to its end.
    assert np.array_equal(strongest.window, series[first - 19 : end])
    assert strongest.worst["channels"][0][0] == bundle.manifest.channels[1].name

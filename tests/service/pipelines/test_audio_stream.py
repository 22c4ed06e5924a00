"""The audio stream pipeline, frame by frame, gives the blocks, scores and verdicts of the same
audio through the clip pipeline, whatever the frame sizes, encoding, channels or sample rate."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from service.audio.decode import DecodeLimits
from service.audio.resample import resample
from service.bundle.loader import load_bundle
from service.metrics import Metrics
from service.pipelines.audio_clip import ClipVerdicts, score_clip
from service.pipelines.audio_stream import AudioStream, Encoding, StreamFrameError
from service.scoring.audio import AudioScorer
from service.scoring.detectors import AudioDetector, BlockVerdict, OperatingPointChoice
from tests.bundle_factory import machine_sound
from tests.service.clips import encode, small_audio_bundle

LIMITS = DecodeLimits(max_seconds=60)


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> AudioDetector:
    folder = small_audio_bundle(tmp_path_factory.mktemp("models") / "fan", name="fan")
    return AudioDetector.at(AudioScorer(load_bundle(folder)), OperatingPointChoice())


def _open(
    detector: AudioDetector,
    *,
    rate: int = 16000,
    encoding: Encoding = "pcm_s16le",
    channels: int = 1,
    metrics: Metrics | None = None,
) -> AudioStream:
    return AudioStream(
        detector,
        sample_rate=rate,
        encoding=encoding,
        channels=channels,
        min_rate=LIMITS.min_sample_rate,
        max_rate=LIMITS.max_sample_rate,
        max_resample_factor=LIMITS.max_resample_factor,
        metrics=metrics or Metrics(),
    )


def _normal_then_anomalous(rate: int = 16000) -> np.ndarray:
    """2 s of normal hum then 1 s with a whine and knocks: block verdicts of both kinds."""
    normal = machine_sound(2.0, sample_rate=rate, seed=3)
    anomalous = machine_sound(1.0, sample_rate=rate, seed=4, anomalous=True)
    return np.concatenate([normal, anomalous])


def _stream(
    detector: AudioDetector, payload: bytes, *, rate: int, encoding: Encoding, channels: int = 1
) -> list[BlockVerdict]:
    stream = _open(detector, rate=rate, encoding=encoding, channels=channels)
    rng = np.random.default_rng(0)
    verdicts, start = [], 0
    while start < len(payload):
        # Random frame sizes in whole sample frames: blocks straddle frames.
        size = int(rng.integers(1, 3000)) * stream.bytes_per_frame
        verdicts += stream.push(payload[start : start + size])
        start += size
    return verdicts + stream.finish()


def _assert_same(verdicts: list[BlockVerdict], clip: ClipVerdicts) -> None:
    assert [v.index for v in verdicts] == [b.index for b in clip.blocks]
    assert [v.index for v in verdicts] == list(range(len(clip.blocks)))
    np.testing.assert_allclose([v.start_s for v in verdicts], [b.start_s for b in clip.blocks])
    np.testing.assert_allclose([v.end_s for v in verdicts], [b.end_s for b in clip.blocks])
    # ONNX Runtime may sum in another order for another batch size: float32 rounding.
    np.testing.assert_allclose(
        [v.score for v in verdicts], [b.score for b in clip.blocks], rtol=1e-4
    )
    assert [v.anomaly for v in verdicts] == [b.anomaly for b in clip.blocks]
    assert 0 < sum(v.anomaly for v in verdicts) < len(verdicts)


def test_pcm16_stream_matches_the_clip(detector: AudioDetector) -> None:
    samples = _normal_then_anomalous(16000)
    wav = encode(samples, 16000)
    clip = score_clip(detector, wav, limits=LIMITS, metrics=Metrics())
    # The stream sends the very 16-bit values the WAV holds.
    pcm, _ = sf.read(io.BytesIO(wav), dtype="int16")
    verdicts = _stream(detector, pcm.astype("<i2").tobytes(), rate=16000, encoding="pcm_s16le")
    _assert_same(verdicts, clip)


def test_stereo_float_stream_at_another_rate_matches_the_clip(detector: AudioDetector) -> None:
    rate = 44100
    # Made at the model's rate and upsampled, so that it sounds like what the model knows.
    left = resample(_normal_then_anomalous(16000), 16000, rate)
    stereo = np.stack([left, 0.8 * left], axis=1).astype(np.float32)
    clip = score_clip(
        detector, encode(stereo, rate, subtype="FLOAT"), limits=LIMITS, metrics=Metrics()
    )
    verdicts = _stream(
        detector, stereo.astype("<f4").tobytes(), rate=rate, encoding="f32le", channels=2
    )
    _assert_same(verdicts, clip)


def test_a_frame_of_partial_samples_is_refused(detector: AudioDetector) -> None:
    stream = _open(detector, channels=2)
    with pytest.raises(StreamFrameError, match="expected a multiple of 4 bytes"):
        stream.push(b"\x00" * 6)


def test_non_finite_float_samples_are_refused(detector: AudioDetector) -> None:
    stream = _open(detector, encoding="f32le")
    with pytest.raises(StreamFrameError, match="NaN or infinite"):
        stream.push(np.array([0.0, np.nan], dtype="<f4").tobytes())


def test_finite_samples_too_loud_to_score_get_no_verdict(detector: AudioDetector) -> None:
    # 1e19 is finite, but its power spectrum would overflow float32: refused as in a clip.
    stream = _open(detector, encoding="f32le")
    loud = np.full(16000, 1e19, dtype="<f4").tobytes()
    with pytest.raises(StreamFrameError, match=r"magnitude 1e\+19"):
        stream.push(loud)


def test_stage_times_are_recorded(detector: AudioDetector, tmp_path: Path) -> None:
    metrics = Metrics()
    stream = _open(detector, metrics=metrics)
    stream.push(np.zeros(8000, dtype="<i2").tobytes())
    for stage in ("decode", "features", "model"):
        count = metrics.registry.get_sample_value(
            "auscult_stage_duration_seconds_count", {"stage": stage}
        )
        assert count == 1, stage

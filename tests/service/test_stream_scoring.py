"""A stream scored frame by frame gives the blocks, scores and verdicts of the same audio scored
as one clip, whatever the frame sizes, encoding, channels or sample rate."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from service.audio.resample import resample
from service.bundle.loader import load_bundle
from service.clip_scoring import ScoredClip, score_clip
from service.metrics import Metrics
from service.scoring.audio import AudioScorer
from service.scoring.decision import Decision
from service.stream_scoring import AudioStreamScorer, BlockVerdict, Encoding, StreamFrameError
from tests.bundle_factory import machine_sound
from tests.service.clips import encode, small_audio_bundle


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> AudioScorer:
    folder = small_audio_bundle(tmp_path_factory.mktemp("models") / "fan", name="fan")
    return AudioScorer(load_bundle(folder))


def _normal_then_anomalous(rate: int = 16000) -> np.ndarray:
    """2 s of normal hum then 1 s with a whine and knocks: block verdicts of both kinds."""
    normal = machine_sound(2.0, sample_rate=rate, seed=3)
    anomalous = machine_sound(1.0, sample_rate=rate, seed=4, anomalous=True)
    return np.concatenate([normal, anomalous])


def _stream(
    scorer: AudioScorer, payload: bytes, *, rate: int, encoding: Encoding, channels: int = 1
) -> list[BlockVerdict]:
    stream = AudioStreamScorer(
        scorer, sample_rate=rate, encoding=encoding, channels=channels, metrics=Metrics()
    )
    rng = np.random.default_rng(0)
    verdicts, start = [], 0
    while start < len(payload):
        # Random frame sizes in whole sample frames: blocks straddle frames.
        size = int(rng.integers(1, 3000)) * stream.bytes_per_frame
        verdicts += stream.push(payload[start : start + size])
        start += size
    return verdicts + stream.finish()


def _assert_same(verdicts: list[BlockVerdict], clip: ScoredClip, scorer: AudioScorer) -> None:
    decision = Decision(scorer.manifest.block_decision.threshold)
    assert [v.index for v in verdicts] == list(range(clip.block_scores.size))
    np.testing.assert_allclose([v.start_s for v in verdicts], clip.block_start_s)
    np.testing.assert_allclose([v.end_s for v in verdicts], clip.block_end_s)
    # ONNX Runtime may sum in another order for another batch size: float32 rounding.
    np.testing.assert_allclose([v.score for v in verdicts], clip.block_scores, rtol=1e-4)
    assert [v.anomaly for v in verdicts] == list(decision.anomalies(clip.block_scores))
    assert 0 < sum(v.anomaly for v in verdicts) < len(verdicts)


def test_pcm16_stream_matches_the_clip(scorer: AudioScorer) -> None:
    samples = _normal_then_anomalous(16000)
    wav = encode(samples, 16000)
    clip = score_clip(scorer, wav, max_seconds=60, metrics=Metrics())
    # The stream sends the very 16-bit values the WAV holds.
    pcm, _ = sf.read(io.BytesIO(wav), dtype="int16")
    verdicts = _stream(scorer, pcm.astype("<i2").tobytes(), rate=16000, encoding="pcm_s16le")
    _assert_same(verdicts, clip, scorer)


def test_stereo_float_stream_at_another_rate_matches_the_clip(scorer: AudioScorer) -> None:
    rate = 44100
    # Made at the model's rate and upsampled, so that it sounds like what the model knows.
    left = resample(_normal_then_anomalous(16000), 16000, rate)
    stereo = np.stack([left, 0.8 * left], axis=1).astype(np.float32)
    clip = score_clip(
        scorer, encode(stereo, rate, subtype="FLOAT"), max_seconds=60, metrics=Metrics()
    )
    verdicts = _stream(
        scorer, stereo.astype("<f4").tobytes(), rate=rate, encoding="f32le", channels=2
    )
    _assert_same(verdicts, clip, scorer)


def test_a_frame_of_partial_samples_is_refused(scorer: AudioScorer) -> None:
    stream = AudioStreamScorer(
        scorer, sample_rate=16000, encoding="pcm_s16le", channels=2, metrics=Metrics()
    )
    with pytest.raises(StreamFrameError, match="expected a multiple of 4 bytes"):
        stream.push(b"\x00" * 6)


def test_non_finite_float_samples_are_refused(scorer: AudioScorer) -> None:
    stream = AudioStreamScorer(
        scorer, sample_rate=16000, encoding="f32le", channels=1, metrics=Metrics()
    )
    with pytest.raises(StreamFrameError, match="NaN or infinite"):
        stream.push(np.array([0.0, np.nan], dtype="<f4").tobytes())


def test_stage_times_are_recorded(scorer: AudioScorer, tmp_path: Path) -> None:
    metrics = Metrics()
    stream = AudioStreamScorer(
        scorer, sample_rate=16000, encoding="pcm_s16le", channels=1, metrics=metrics
    )
    stream.push(np.zeros(8000, dtype="<i2").tobytes())
    for stage in ("decode", "features", "model"):
        count = metrics.registry.get_sample_value(
            "auscult_stage_duration_seconds_count", {"stage": stage}
        )
        assert count == 1, stage

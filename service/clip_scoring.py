"""Score one uploaded clip with an audio model: decode, resample, log-mel blocks, model, verdicts,
timing each stage. Blocking: it runs in the scoring pool."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from service.audio.decode import decode_audio
from service.audio.resample import resample
from service.bundle.manifest import LogMelSettings
from service.features.logmel import mel_filterbank
from service.metrics import Metrics
from service.scoring.audio import AudioScorer


class ClipTooLongError(ValueError):
    """The clip is longer than the configured maximum."""


@dataclass(frozen=True)
class ScoredClip:
    duration_s: float
    sample_rate: int
    channels: int
    score: float
    block_scores: np.ndarray
    block_start_s: np.ndarray
    block_end_s: np.ndarray
    worst_block: int
    worst_band_error: np.ndarray


@lru_cache(maxsize=32)
def band_centres_hz(settings: LogMelSettings) -> tuple[float, ...]:
    """Each mel band's centre frequency: where its triangular filter peaks."""
    basis = mel_filterbank(settings)
    bins = np.fft.rfftfreq(settings.n_fft, d=1.0 / settings.sample_rate)
    return tuple(float(bins[i]) for i in np.argmax(basis, axis=1))


def score_clip(
    scorer: AudioScorer, data: bytes, *, max_seconds: float, metrics: Metrics
) -> ScoredClip:
    """Raises AudioDecodeError (not audio), ClipTooLongError, AudioTooShortError (no block)."""
    features = scorer.manifest.features
    with metrics.time_stage("decode"):
        decoded = decode_audio(data)
        if decoded.duration_s > max_seconds:
            raise ClipTooLongError(
                f"clip is {decoded.duration_s:.1f} s long; the limit is {max_seconds:g} s"
            )
        samples = resample(decoded.samples, decoded.sample_rate, features.sample_rate)
    with metrics.time_stage("features"):
        blocks = scorer.extractor.clip_blocks(samples)
    with metrics.time_stage("model"):
        scores, band_error = scorer.score_blocks(blocks)
    start_s, end_s = scorer.extractor.block_times(scores.size)
    worst = int(np.argmax(scores))
    return ScoredClip(
        duration_s=decoded.duration_s,
        sample_rate=decoded.sample_rate,
        channels=decoded.channels,
        # The mean, as AudioScorer.score_samples aggregates (the manifest allows only "mean").
        score=float(scores.mean(dtype=np.float64)),
        block_scores=scores,
        block_start_s=start_s,
        block_end_s=end_s,
        worst_block=worst,
        worst_band_error=band_error[worst],
    )

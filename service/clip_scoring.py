"""Score one uploaded clip with an audio model: decode, resample, log-mel blocks, model,
timing each stage. Blocking: it runs in the scoring pool."""

from __future__ import annotations

from dataclasses import dataclass

from service.audio.decode import decode_audio
from service.audio.resample import resample
from service.metrics import Metrics
from service.scoring.audio import AudioScorer, ClipScore


class ClipTooLongError(ValueError):
    """The clip is longer than the configured maximum."""


@dataclass(frozen=True)
class ScoredClip(ClipScore):
    """The clip's scores, and the upload's length, rate and channels as decoded."""

    duration_s: float
    sample_rate: int
    channels: int


def score_clip(
    scorer: AudioScorer, data: bytes, *, max_seconds: float, metrics: Metrics
) -> ScoredClip:
    """Raises AudioDecodeError (not audio), ClipTooLongError, AudioTooShortError (no block)."""
    with metrics.time_stage("decode"):
        decoded = decode_audio(data)
        if decoded.duration_s > max_seconds:
            raise ClipTooLongError(
                f"clip is {decoded.duration_s:.1f} s long; the limit is {max_seconds:g} s"
            )
        samples = resample(
            decoded.samples, decoded.sample_rate, scorer.manifest.features.sample_rate
        )
    with metrics.time_stage("features"):
        blocks = scorer.extractor.clip_blocks(samples)
    with metrics.time_stage("model"):
        scored = scorer.score_clip_blocks(blocks)
    return ScoredClip(
        **vars(scored),
        duration_s=decoded.duration_s,
        sample_rate=decoded.sample_rate,
        channels=decoded.channels,
    )

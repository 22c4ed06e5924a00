"""An uploaded clip -> verdicts: decode and resample, log-mel blocks, model, the served model's
decisions; each stage timed. Blocking: it runs in the scoring pool."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.audio.decode import DecodeLimits, decode_audio
from service.audio.resample import resample
from service.events.capture import EventSink, clip_event
from service.events.schema import Source
from service.metrics import Metrics
from service.scoring.decision import Verdict, require_finite
from service.scoring.detectors import AudioDetector, BlockVerdict


@dataclass(frozen=True)
class ClipVerdicts:
    score: float  # the clip score: the mean of its block scores
    verdict: Verdict  # with the clip threshold
    blocks: list[BlockVerdict]  # with the block threshold
    worst_block: int  # index of the highest block score
    worst_band_error: np.ndarray  # (n_mels,) reconstruction error per mel band of that block
    duration_s: float  # the upload as decoded
    sample_rate: int
    channels: int


def score_clip(
    detector: AudioDetector,
    data: bytes,
    *,
    limits: DecodeLimits,
    metrics: Metrics,
    station: str | None = None,
    events: EventSink | None = None,
    event_source: Source = "clip",
) -> ClipVerdicts:
    """Raises AudioDecodeError (not audio, or beyond `limits`, including a rate that is not
    resampled to the model's), AudioTooShortError (no block), NonFiniteError (features or
    scores out of range: no verdict)."""
    scorer = detector.scorer
    with metrics.time_stage("decode"):
        decoded = decode_audio(data, limits=limits)
        samples = resample(
            decoded.samples,
            decoded.sample_rate,
            scorer.manifest.features.sample_rate,
            min_rate=limits.min_sample_rate,
            max_rate=limits.max_sample_rate,
            max_factor=limits.max_resample_factor,
        )
    with metrics.time_stage("features"):
        blocks = scorer.extractor.clip_blocks(samples)
        require_finite(blocks, "log-mel features")
    with metrics.time_stage("model"):
        scored = scorer.score_clip_blocks(blocks)
    verdict = detector.clip(scored.clip_score)
    block_verdicts = detector.block_verdicts(
        0, scored.block_scores, scored.block_start_s, scored.block_end_s
    )
    metrics.record_verdicts(
        scorer.manifest.name, station, "clip", [verdict.anomaly], [verdict.ratio]
    )
    if events is not None:
        events.submit(
            clip_event(
                detector,
                score=scored.clip_score,
                verdict=verdict,
                blocks=block_verdicts,
                worst_band_error=scored.worst_band_error,
                samples=samples,
                station=station,
                source=event_source,
            )
        )
    return ClipVerdicts(
        score=scored.clip_score,
        verdict=verdict,
        blocks=block_verdicts,
        worst_block=scored.worst_block,
        worst_band_error=scored.worst_band_error,
        duration_s=decoded.duration_s,
        sample_rate=decoded.sample_rate,
        channels=decoded.channels,
    )

"""Events built from the verdicts a pipeline gives: one per scored clip, one per sensor series
with alarms. Pipelines call these and hand the result to an EventSink."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from service.events.records import NewEvent
from service.events.schema import Source
from service.features.logmel import mel_band_centres_hz
from service.scoring.decision import Verdict
from service.scoring.detectors import AudioDetector, BlockVerdict, StepVerdicts, WindowsDetector


class EventSink(Protocol):
    def submit(self, event: NewEvent) -> bool:
        """Queue the event without blocking; False when it was dropped."""
        ...


def audio_detail(
    detector: AudioDetector, blocks: list[BlockVerdict], band_error: np.ndarray | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `worst` and `detail` of an audio event: the worst block (and its worst band when
    its band errors are known), and the block scores over time with those band errors."""
    worst_block = max(blocks, key=lambda block: block.score)
    worst: dict[str, Any] = {"block": worst_block.index}
    detail: dict[str, Any] = {
        "block_threshold": detector.block.threshold,
        "blocks": [[b.start_s, b.end_s, b.score] for b in blocks],
    }
    if band_error is not None:
        band_hz = mel_band_centres_hz(detector.scorer.manifest.features)
        band = int(np.argmax(band_error))
        worst.update(band=band, band_hz=float(band_hz[band]))
        detail.update(
            band_error=[float(v) for v in band_error], band_hz=[float(v) for v in band_hz]
        )
    return worst, detail


def clip_event(
    detector: AudioDetector,
    *,
    score: float,
    verdict: Verdict,
    blocks: list[BlockVerdict],
    worst_band_error: np.ndarray,
    samples: np.ndarray,
    station: str | None,
    source: Source,
) -> NewEvent:
    """The event of a scored clip; `samples` at the model's rate become its evidence."""
    manifest = detector.scorer.manifest
    worst, detail = audio_detail(detector, blocks, worst_band_error)
    return NewEvent(
        model=manifest.name,
        version=manifest.version,
        kind="audio",
        source=source,
        station=station,
        score=score,
        threshold=detector.clip.threshold,
        ratio=verdict.ratio,
        anomaly=verdict.anomaly,
        span_start=0.0,
        span_end=blocks[-1].end_s,
        worst=worst,
        detail=detail,
        audio=samples,
        sample_rate=manifest.features.sample_rate,
    )


def series_event(
    detector: WindowsDetector,
    verdicts: StepVerdicts,
    samples: np.ndarray,
    *,
    station: str | None,
    source: Source,
) -> NewEvent | None:
    """The event of a sensor series or stretch with alarms (None without): its steps' scores,
    the channels behind its strongest run, and the readings as evidence."""
    if not verdicts.anomalies.any():
        return None
    manifest = detector.scorer.manifest
    peak = int(np.argmax(verdicts.scores))
    strongest = max(verdicts.runs, key=lambda run: run.peak_score)
    first = verdicts.first_step
    return NewEvent(
        model=manifest.name,
        version=manifest.version,
        kind="sensor",
        source=source,
        station=station,
        score=float(verdicts.scores[peak]),
        threshold=detector.step.threshold,
        ratio=float(verdicts.ratios[peak]),
        anomaly=True,
        span_start=float(first),
        span_end=float(first + verdicts.n_steps),
        worst={
            "step": first + peak,
            "channels": [[share.name, share.share] for share in strongest.channels],
        },
        detail={
            "step_threshold": detector.step.threshold,
            "first_step": first,
            "scores": [float(v) for v in verdicts.scores],
            "runs": [[run.start, run.end] for run in verdicts.runs],
        },
        window=samples,
    )

"""A posted sensor series -> per-step verdicts: parse the JSON body, standardise, windows through
the model, the served model's decisions; each stage timed. Blocking: it runs in the scoring
pool."""

from __future__ import annotations

from service.events.capture import EventSink, series_event
from service.events.schema import Source
from service.metrics import Metrics
from service.scoring.decision import require_finite
from service.scoring.detectors import StepVerdicts, WindowsDetector
from service.sensor_input import parse_sensor_samples


def score_series(
    detector: WindowsDetector,
    body: bytes,
    *,
    max_steps: int,
    top_channels: int,
    metrics: Metrics,
    station: str | None = None,
    events: EventSink | None = None,
    event_source: Source = "windows",
) -> StepVerdicts:
    """Raises SensorInputError (not a usable series), SeriesTooShortError (shorter than one
    window), NonFiniteError (standardised readings or scores out of range: no verdict)."""
    scorer = detector.scorer
    with metrics.time_stage("decode"):
        samples = parse_sensor_samples(body, scorer.channel_names, max_steps=max_steps)
    with metrics.time_stage("features"):
        values = scorer.standardise(samples)
        require_finite(values, "standardised readings")
    with metrics.time_stage("model"):
        steps = scorer.score_standardised(values)
    verdicts = detector.step_verdicts(steps, top_channels)
    metrics.record_verdicts(
        scorer.manifest.name,
        station,
        "windows",
        verdicts.anomalies.tolist(),
        verdicts.ratios.tolist(),
    )
    if events is not None:
        event = series_event(detector, verdicts, samples, station=station, source=event_source)
        if event is not None:
            events.submit(event)
    return verdicts

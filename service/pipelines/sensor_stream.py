"""A sensor stream -> per-step verdicts: rows pushed frame by frame, the verdicts the same series
posted whole would get; each stage timed. Blocking: `push` and `finish` run in the scoring
pool."""

from __future__ import annotations

from typing import Any

from service.events.capture import EventSink
from service.events.stretches import SensorStretches
from service.metrics import Metrics
from service.scoring.decision import require_finite
from service.scoring.detectors import StepVerdicts, WindowsDetector
from service.scoring.windows import StepScores, WindowsStreamScorer
from service.sensor_input import sensor_rows

# Channels named per anomalous run, as POST /windows names by default.
TOP_CHANNELS = 3


class SensorStream:
    """One stream's state: rows carry over between frames, so a window split across frames
    scores as it would in the whole series."""

    def __init__(
        self,
        detector: WindowsDetector,
        *,
        columns: list[str] | None,
        max_steps: int,
        metrics: Metrics,
        station: str | None = None,
        events: EventSink | None = None,
    ) -> None:
        self._detector = detector
        self._stream = WindowsStreamScorer(detector.scorer)
        self._columns = columns  # the frames' column order, if not the model's
        self._max_steps = max_steps
        self._metrics = metrics
        self._station = station
        self.steps_scored = 0
        self.anomalous_steps = 0
        self._stretches = SensorStretches(detector, events, station) if events is not None else None

    @property
    def steps_received(self) -> int:
        return self._stream.steps_received

    def push(self, rows: Any) -> StepVerdicts:
        """Verdicts on the steps that became final (possibly none) once the frame's parsed
        `samples` are added. Raises SensorInputError, NonFiniteError."""
        scorer = self._detector.scorer
        with self._metrics.time_stage("decode"):
            samples = sensor_rows(
                rows, scorer.channel_names, columns=self._columns, max_steps=self._max_steps
            )
            if self._stretches is not None:
                self._stretches.rows(samples)
        with self._metrics.time_stage("features"):
            values = scorer.standardise(samples)
            require_finite(values, "standardised readings")
        with self._metrics.time_stage("model"):
            steps = self._stream.push_standardised(values)
        return self._verdicts(steps)

    def finish(self) -> StepVerdicts:
        """Verdicts on every step not yet judged; the stream is then over."""
        with self._metrics.time_stage("model"):
            steps = self._stream.finish()
        verdicts = self._verdicts(steps)
        if self._stretches is not None:
            self._stretches.finish()
        return verdicts

    def _verdicts(self, steps: StepScores) -> StepVerdicts:
        verdicts = self._detector.step_verdicts(steps, TOP_CHANNELS)
        self._metrics.record_verdicts(
            self._detector.scorer.manifest.name,
            self._station,
            "stream",
            verdicts.anomalies.tolist(),
            verdicts.ratios.tolist(),
        )
        self.steps_scored += verdicts.n_steps
        self.anomalous_steps += int(verdicts.anomalies.sum())
        if self._stretches is not None:
            self._stretches.steps(verdicts)
        return verdicts

"""Alarmed stretches of a stream: consecutive anomalous blocks (audio) or steps (sensor) become
one event when the stretch ends, is cut at a length limit, or the stream finishes. Each keeps
the recent input it needs as evidence, so memory stays bounded by that limit."""

from __future__ import annotations

import collections

import numpy as np

from service.events.capture import EventSink, audio_detail, series_event
from service.events.records import NewEvent
from service.scoring.detectors import AudioDetector, BlockVerdict, StepVerdicts, WindowsDetector

# A stretch longer than this is cut into several events, so its audio stays reviewable.
MAX_STRETCH_SECONDS = 60.0
MAX_STRETCH_STEPS = 10_000


class AudioStretches:
    def __init__(self, detector: AudioDetector, sink: EventSink, station: str | None) -> None:
        features = detector.scorer.manifest.features
        self._detector = detector
        self._sink = sink
        self._station = station
        self._rate = features.sample_rate
        # Audio is kept from the start of the last judged block (the next starts no earlier),
        # or of the open stretch: what no verdict reached yet, and the stretch's own.
        self._last_block_start = 0.0
        # Chunks as they came, joined only when a stretch closes: joining on every frame would
        # copy up to a minute of audio per frame during a long stretch.
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._audio_start = 0  # stream sample index of the first chunk's first sample
        self._open: list[BlockVerdict] = []

    def audio(self, samples: np.ndarray) -> None:
        """Samples at the model's rate, as the stream resampled them."""
        self._chunks.append(samples.astype(np.float32, copy=False))
        keep_from_s = self._open[0].start_s if self._open else self._last_block_start
        keep_from = int(keep_from_s * self._rate)
        # Whole chunks that end before what is kept are let go; a partial one stays.
        while self._chunks and self._audio_start + len(self._chunks[0]) <= keep_from:
            self._audio_start += len(self._chunks.popleft())

    def blocks(self, verdicts: list[BlockVerdict]) -> None:
        for verdict in verdicts:
            self._last_block_start = verdict.start_s
            if not verdict.anomaly:
                self._close()
                continue
            self._open.append(verdict)
            if verdict.end_s - self._open[0].start_s >= MAX_STRETCH_SECONDS:
                self._close()

    def finish(self) -> None:
        self._close()

    def _close(self) -> None:
        if not self._open:
            return
        blocks, self._open = self._open, []
        manifest = self._detector.scorer.manifest
        first = int(blocks[0].start_s * self._rate) - self._audio_start
        last = int(blocks[-1].end_s * self._rate) - self._audio_start
        peak = max(blocks, key=lambda block: block.score)
        worst, detail = audio_detail(self._detector, blocks, peak.band_error)
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.float32)
        self._sink.submit(
            NewEvent(
                model=manifest.name,
                version=manifest.version,
                kind="audio",
                source="stream",
                station=self._station,
                score=peak.score,
                threshold=self._detector.block.threshold,
                ratio=peak.ratio,
                anomaly=True,
                span_start=blocks[0].start_s,
                span_end=blocks[-1].end_s,
                worst=worst,
                detail=detail,
                audio=audio[max(0, first) : max(0, last)].copy(),
                sample_rate=self._rate,
            )
        )


class SensorStretches:
    def __init__(self, detector: WindowsDetector, sink: EventSink, station: str | None) -> None:
        self._detector = detector
        self._sink = sink
        self._station = station
        # Rows are kept from a window before the first step not judged yet, or before the open
        # stretch: the readings behind every verdict still to come.
        self._window = detector.scorer.manifest.window
        self._next_step = 0
        self._rows = np.zeros((0, len(detector.scorer.channel_names)), dtype=np.float32)
        self._rows_start = 0  # stream step index of self._rows[0]
        self._open: list[StepVerdicts] = []

    def rows(self, samples: np.ndarray) -> None:
        """Readings as received, in the model's channel order."""
        self._rows = np.concatenate([self._rows, samples.astype(np.float32, copy=False)])
        first_needed = self._open[0].first_step if self._open else self._next_step
        keep_from = first_needed - self._window + 1
        cut = min(len(self._rows), max(0, keep_from - self._rows_start))
        self._rows = self._rows[cut:]
        self._rows_start += cut

    def steps(self, verdicts: StepVerdicts) -> None:
        """Split the verdicts into anomalous stretches and normal steps; close on a normal one."""
        anomalies = verdicts.anomalies
        self._next_step = verdicts.first_step + verdicts.n_steps
        start = 0
        while start < len(anomalies):
            end = start
            while end < len(anomalies) and anomalies[end] == anomalies[start]:
                end += 1
            if anomalies[start]:
                self._open.append(_slice(verdicts, start, end))
                if sum(v.n_steps for v in self._open) >= MAX_STRETCH_STEPS:
                    self._close()
            else:
                self._close()
            start = end

    def finish(self) -> None:
        self._close()

    def _close(self) -> None:
        if not self._open:
            return
        parts, self._open = self._open, []
        merged = StepVerdicts(
            first_step=parts[0].first_step,
            scores=np.concatenate([p.scores for p in parts]),
            ratios=np.concatenate([p.ratios for p in parts]),
            anomalies=np.concatenate([p.anomalies for p in parts]),
            runs=[run for p in parts for run in p.runs],
        )
        first = max(0, merged.first_step - self._window + 1 - self._rows_start)
        last = max(0, merged.first_step + merged.n_steps - self._rows_start)
        event = series_event(
            self._detector,
            merged,
            self._rows[first:last].copy(),
            station=self._station,
            source="stream",
        )
        if event is not None:
            self._sink.submit(event)


def _slice(verdicts: StepVerdicts, start: int, end: int) -> StepVerdicts:
    """The verdicts of steps [start, end) and the runs among them."""
    first = verdicts.first_step + start
    return StepVerdicts(
        first_step=first,
        scores=verdicts.scores[start:end],
        ratios=verdicts.ratios[start:end],
        anomalies=verdicts.anomalies[start:end],
        runs=[
            run
            for run in verdicts.runs
            if run.start < verdicts.first_step + end and run.end > first
        ],
    )

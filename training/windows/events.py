"""Alarms as an operator sees them: an alarm event is a run of consecutive flagged steps, so a
threshold's false-alarm rate counts events, not steps; and, per labelled anomalous segment,
whether it was alarmed and how many steps after its start the first alarm came.

Runs never cross the boundary between two parts (separate recordings, or held-out blocks cut
from different places of the training series)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from training.windows.metrics import anomaly_segments

# A day of one-minute steps (SMD's sampling): the unit the event figures are compared in.
STEPS_PER_DAY_OF_MINUTES = 1440


def alarm_counts(parts: Sequence[ArrayLike], thresholds: ArrayLike) -> NDArray[np.int64]:
    """The number of alarm events (runs of steps scoring above the threshold) in `parts` at each
    of `thresholds`, computed for all thresholds at once.

    A step starts an event at threshold t when its score s > t and its predecessor's p <= t (a
    part's first step has no predecessor). So events(t) = #{s > t} - #{min(s, p) > t}."""
    values = [np.asarray(part, dtype=np.float64).ravel() for part in parts]
    scores = np.concatenate(values) if values else np.zeros(0)
    lower = np.concatenate(
        [np.r_[-np.inf, np.minimum(v[1:], v[:-1])] for v in values if v.size] or [np.zeros(0)]
    )
    at = np.asarray(thresholds, dtype=np.float64)
    above = scores.size - np.searchsorted(np.sort(scores), at, side="right")
    continuing = lower.size - np.searchsorted(np.sort(lower), at, side="right")
    return np.asarray(above - continuing, dtype=np.int64)


@dataclass(frozen=True)
class SegmentAlarm:
    """A labelled anomalous segment [start, end) of the concatenated test steps, and the number
    of steps from its start to its first flagged step (None: never alarmed)."""

    start: int
    end: int
    first_alarm: int | None


@dataclass(frozen=True)
class EventFigures:
    alarms: int  # alarm events in all the data
    false_alarms: int  # alarm events that touch no labelled anomalous step
    normal_steps: int
    # Normal steps flagged: an alarm running through a whole recording is one event that
    # touches its anomaly, so the event count alone would call it no false alarm.
    normal_flagged: int
    segments: tuple[SegmentAlarm, ...]

    def as_metrics(self, step_seconds: float | None) -> dict[str, float]:
        """Flat figures: false alarms per 1,440 normal steps (and per hour of normal signal where
        the step interval is known), the share of labelled segments alarmed, and the steps to
        the first alarm in the alarmed ones (median, mean, max)."""
        per_step = self.false_alarms / self.normal_steps if self.normal_steps else float("nan")
        delays = [s.first_alarm for s in self.segments if s.first_alarm is not None]
        figures = {
            "alarms": float(self.alarms),
            "false_alarms": float(self.false_alarms),
            "false_alarms_per_1440_steps": per_step * STEPS_PER_DAY_OF_MINUTES,
            "normal_flagged_share": (
                self.normal_flagged / self.normal_steps if self.normal_steps else float("nan")
            ),
            "segments_alarmed": (
                len(delays) / len(self.segments) if self.segments else float("nan")
            ),
            "first_alarm_steps_median": float(np.median(delays)) if delays else float("nan"),
            "first_alarm_steps_mean": float(np.mean(delays)) if delays else float("nan"),
            "first_alarm_steps_max": float(np.max(delays)) if delays else float("nan"),
        }
        if step_seconds is not None:
            figures["false_alarms_per_hour"] = per_step * 3600.0 / step_seconds
        return figures


def event_figures(
    scores: Sequence[ArrayLike], labels: Sequence[ArrayLike], threshold: float
) -> EventFigures:
    """Alarm events and segment alarms of each part (`scores[i]` with `labels[i]`) at
    `threshold`; segment positions are in the parts' concatenated steps."""
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scored parts for {len(labels)} labelled parts")
    alarms = false_alarms = normal_steps = normal_flagged = offset = 0
    segments: list[SegmentAlarm] = []
    for part_scores, part_labels in zip(scores, labels, strict=True):
        values = np.asarray(part_scores, dtype=np.float64)
        truth = np.asarray(part_labels).astype(bool)
        if values.shape != truth.shape:
            raise ValueError(f"{values.shape[0]} scores for {truth.shape[0]} labels")
        flagged = values > threshold
        runs = anomaly_segments(flagged)
        touched = np.concatenate([[0], np.cumsum(truth)])
        alarms += runs.shape[0]
        false_alarms += int(np.sum(touched[runs[:, 1]] - touched[runs[:, 0]] == 0))
        normal_steps += int((~truth).sum())
        normal_flagged += int((flagged & ~truth).sum())
        for start, end in anomaly_segments(truth):
            hits = np.flatnonzero(flagged[start:end])
            first = int(hits[0]) if hits.size else None
            segments.append(SegmentAlarm(offset + int(start), offset + int(end), first))
        offset += values.shape[0]
    return EventFigures(alarms, false_alarms, normal_steps, normal_flagged, tuple(segments))

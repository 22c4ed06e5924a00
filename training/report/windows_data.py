"""A sensor report's data: the labelled test parts of the data set the bundle was trained on
(its manifest's `data_format` and `data_subset`), scored step by step through the exported bundle
by the service's `WindowsScorer`, and the figures measured at each operating point."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from service.bundle.loader import LoadedBundle
from service.bundle.manifest import WindowsManifest
from service.scoring.windows import WindowsScorer
from training.report.points import ShownPoint, shown_points
from training.windows.events import event_figures
from training.windows.loaders import load_data
from training.windows.metrics import thresholded_metrics


@dataclass(frozen=True)
class PartSpan:
    """Test part `name` covers steps [start, end) of the concatenated test steps."""

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class StepFigures:
    """Point-wise figures at one step threshold, and the alarm events as an operator sees them
    (training.windows.events): false alarms per 1,440 normal steps, segments alarmed."""

    threshold: float
    precision: float
    recall: float
    f1: float
    normal_flagged: float  # share of the normal steps flagged
    false_alarms_per_1440_steps: float
    false_alarms_per_hour: float | None  # where the step interval is known
    segments_alarmed: int
    segments: int
    first_alarm_steps_median: float | None


@dataclass(frozen=True)
class TestScores:
    data: str  # the data set, in words
    scores: NDArray[np.float64]  # every test step, parts in order
    anomalous: NDArray[np.bool_]
    parts: tuple[PartSpan, ...]
    measured: dict[str, StepFigures]  # by operating point name


@dataclass(frozen=True)
class WindowsReportData:
    manifest: WindowsManifest
    points: list[ShownPoint]
    test: TestScores | None  # None when no data folder was given


def step_figures(
    scores: NDArray[np.float64],
    anomalous: NDArray[np.bool_],
    parts: tuple[PartSpan, ...],
    threshold: float,
    step_seconds: float | None,
) -> StepFigures:
    pointwise = thresholded_metrics(scores, anomalous, threshold)
    events = event_figures(
        [scores[p.start : p.end] for p in parts],
        [anomalous[p.start : p.end] for p in parts],
        threshold,
    )
    figures = events.as_metrics(step_seconds)
    delays = [s.first_alarm for s in events.segments if s.first_alarm is not None]
    return StepFigures(
        threshold=threshold,
        precision=pointwise["precision"],
        recall=pointwise["recall"],
        f1=pointwise["f1"],
        normal_flagged=figures["normal_flagged_share"],
        false_alarms_per_1440_steps=figures["false_alarms_per_1440_steps"],
        false_alarms_per_hour=figures.get("false_alarms_per_hour"),
        segments_alarmed=len(delays),
        segments=len(events.segments),
        first_alarm_steps_median=float(np.median(delays)) if delays else None,
    )


def _score_test(bundle: LoadedBundle, manifest: WindowsManifest, data_dir: Path) -> TestScores:
    if manifest.data_format is None:
        raise ValueError("the bundle does not record its data format, so its data cannot be read")
    data = load_data(manifest.data_format, data_dir, manifest.data_subset)
    expected = tuple(c.name for c in manifest.channels)
    if data.channels != expected:
        raise ValueError(
            f"{data.name} has {len(data.channels)} channels {list(data.channels)[:5]}..., the "
            f"bundle expects {len(expected)} {list(expected)[:5]}..."
        )
    if not data.test:
        raise ValueError(f"{data.name} has no labelled test data to report on")
    scorer = WindowsScorer(bundle)
    spans, scores, start = [], [], 0
    for part in data.test:
        scores.append(scorer.score(part.values).scores)
        spans.append(PartSpan(part.name, start, start + part.values.shape[0]))
        start += part.values.shape[0]
    all_scores = np.concatenate(scores)
    labels = data.test_labels
    points = shown_points(manifest)
    return TestScores(
        data=f"{data.source}: {len(data.test)} labelled test part(s), {labels.size} steps, "
        f"{int(labels.sum())} labelled anomalous",
        scores=all_scores,
        anomalous=labels,
        parts=tuple(spans),
        measured={
            p.name: step_figures(
                all_scores, labels, tuple(spans), p.thresholds["step"], manifest.step_seconds
            )
            for p in points
        },
    )


def windows_report_data(bundle: LoadedBundle, data_dir: Path | None) -> WindowsReportData:
    """Score the test parts of `data_dir`, read as the bundle's data format and subset."""
    manifest = bundle.manifest
    if not isinstance(manifest, WindowsManifest):
        raise ValueError(f"bundle {bundle.path} is a {manifest.kind} bundle, not a windows one")
    test = None if data_dir is None else _score_test(bundle, manifest, data_dir)
    return WindowsReportData(manifest, shown_points(manifest), test)

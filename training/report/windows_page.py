"""The sections of a sensor bundle's report: measured figures at each operating point, the step
score histogram, the ROC curve, and the scores over time with the labelled segments shaded."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from training.report.figures import ScorePanel, save, score_histograms, series_figure
from training.report.page import Section, figure, image, number, paragraph, roc_section, table, text
from training.report.roc import roc_of
from training.report.windows_data import TestScores, WindowsReportData
from training.windows.metrics import anomaly_segments


def _measured(data: WindowsReportData, test: TestScores) -> Section:
    per_hour = data.manifest.step_seconds is not None
    rows = []
    for point in data.points:
        measured = test.measured[point.name]
        predicted = "; ".join(
            f"{number(p.rate)} per {p.per} ({number(p.low)} to {number(p.high)})"
            for p in point.predicted.values()
        )
        hourly = [figure(f"false_alarms_per_hour[{point.name}]", measured.false_alarms_per_hour)]
        rows.append(
            (
                text(point.name),
                text(f"{measured.threshold:.6g}"),
                figure(f"precision[{point.name}]", measured.precision),
                figure(f"recall[{point.name}]", measured.recall),
                figure(f"f1[{point.name}]", measured.f1),
                figure(f"normal_flagged[{point.name}]", measured.normal_flagged),
                figure(
                    f"false_alarms_per_1440_steps[{point.name}]",
                    measured.false_alarms_per_1440_steps,
                ),
                *(hourly if per_hour else []),
                text(f"{measured.segments_alarmed} of {measured.segments}"),
                text(number(measured.first_alarm_steps_median, 0)),
                text(predicted or "not recorded"),
            )
        )
    headers = [
        "operating point", "step threshold", "precision", "recall", "F1",
        "normal steps flagged (share)", "false alarms per 1,440 normal steps",
        *(["false alarms per hour"] if per_hour else []),
        "labelled segments alarmed", "steps to first alarm (median)", "predicted false alarms",
    ]  # fmt: skip
    body = (
        paragraph(text(test.data))
        + table(headers, rows)
        + paragraph(
            "Precision, recall and F1 count steps; a false alarm is a run of flagged steps that "
            "touches no labelled anomalous step.",
            note=True,
        )
    )
    return Section("measured", "Measured on the labelled test data", body)


def _scores(data: WindowsReportData, test: TestScores, folder: Path) -> Section:
    panel = ScorePanel(
        "step scores",
        test.scores[~test.anomalous],
        test.scores[test.anomalous],
        data.manifest.step_decision,
        {p.name: p.thresholds["step"] for p in data.points},
    )
    save(score_histograms([panel]), folder / "scores.png")
    body = paragraph(
        "Test steps labelled normal and anomalous, the Gamma fitted for the served decision "
        f"(r = {data.manifest.step_decision.r:g}) and every operating point's threshold."
    ) + image("scores.png", "histogram of step scores with Gamma and thresholds")
    return Section("scores", "Score distributions", body)


def _series(data: WindowsReportData, test: TestScores, folder: Path) -> Section:
    thresholds = {p.name: p.thresholds["step"] for p in data.points}
    segments = anomaly_segments(test.anomalous)
    starts = [part.start for part in test.parts]
    save(
        series_figure(test.scores, test.anomalous, segments, starts, thresholds),
        folder / "series.png",
    )
    body = image("series.png", "step scores over time, labelled segments shaded, thresholds")
    return Section("series", "Scores over time", body)


def windows_sections(data: WindowsReportData, folder: Path) -> tuple[list[Section], dict[str, Any]]:
    """The sections (figures written into `folder`) and the figures they state, for JSON."""
    test = data.test
    if test is None:
        return [], {}
    roc = roc_of(test.scores, test.anomalous)
    sections = [
        _measured(data, test),
        _scores(data, test, folder),
        roc_section(roc, folder, scored="test steps", pooled="Point-wise over all test steps"),
        _series(data, test, folder),
    ]
    summary = {
        "steps": {"normal": int((~test.anomalous).sum()), "anomalous": int(test.anomalous.sum())},
        "auc": None if roc is None else roc.auc,
        "pauc": None if roc is None else roc.pauc,
        "measured": {name: asdict(m) for name, m in test.measured.items()},
    }
    return sections, summary

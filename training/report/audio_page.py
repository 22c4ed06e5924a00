"""The sections of an audio bundle's report: measured figures at each operating point, clip and
block score histograms, the ROC curve, and one clip's block scores and band errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.report.audio_data import AudioReportData, ClipDetail, HeldOutScores
from training.report.figures import (
    ScorePanel,
    band_error_figure,
    block_scores_figure,
    save,
    score_histograms,
)
from training.report.page import Section, figure, image, number, paragraph, roc_section, table, text
from training.report.points import ShownPoint
from training.report.roc import roc_of


def _measured(held_out: HeldOutScores, points: list[ShownPoint]) -> Section:
    rows = []
    for point in points:
        report = held_out.measured[point.name]
        predicted = point.predicted.get("clip")
        rows.append(
            (
                text(point.name),
                text(f"{point.thresholds['clip']:.6g}"),
                figure(f"precision[{point.name}]", report.precision),
                figure(f"recall[{point.name}]", report.recall),
                figure(f"f1[{point.name}]", report.f1),
                figure(f"false_alarm_rate[{point.name}]", report.false_alarm_rate),
                text(
                    "not recorded"
                    if predicted is None
                    else f"{number(predicted.rate)} ({number(predicted.low)} to "
                    f"{number(predicted.high)})"
                ),
            )
        )
    first = held_out.measured[points[0].name]
    groups = "".join(
        f"<li>{text(g.name)}: AUC {number(g.auc)}, pAUC {number(g.pauc)} ({g.n_normal} normal, "
        f"{g.n_anomaly} anomalous clips)</li>"
        for g in first.groups
    )
    body = (
        paragraph(text(held_out.note), note=True)
        + paragraph(
            f"{first.n_normal} normal and {first.n_anomaly} anomalous clips from "
            f"{first.n_recordings} recordings. AUC {figure('auc_headline', first.auc)}, pAUC "
            f"{figure('pauc_headline', first.pauc)} ({text(first.averaging)})."
        )
        + (f"<ul>{groups}</ul>" if groups else "")
        + table(
            (
                "operating point",
                "clip threshold",
                "precision",
                "recall",
                "F1",
                "false-alarm rate (normal clips flagged)",
                "predicted false-alarm rate",
            ),
            rows,
        )
    )
    return Section("measured", "Measured on recordings the bundle never saw", body)


def _scores(data: AudioReportData, held_out: HeldOutScores, folder: Path) -> Section:
    clip_scores, clip_anomalous = held_out.clip_scores, held_out.clip_anomalous
    blocks, block_anomalous = held_out.block_scores, held_out.block_anomalous
    manifest = data.manifest
    panels = [
        ScorePanel(
            "clip scores (mean of the clip's block scores)",
            clip_scores[~clip_anomalous],
            clip_scores[clip_anomalous],
            manifest.clip_decision,
            {p.name: p.thresholds["clip"] for p in data.points},
        ),
        ScorePanel(
            "block scores",
            blocks[~block_anomalous],
            blocks[block_anomalous],
            manifest.block_decision,
            {p.name: p.thresholds["block"] for p in data.points},
        ),
    ]
    save(score_histograms(panels), folder / "scores.png")
    body = paragraph(
        "Held-out normal and anomalous scores, the Gamma fitted for the served decisions (r = "
        f"{manifest.clip_decision.r:g}) and every operating point's threshold."
    ) + image("scores.png", "histograms of clip and block scores with Gamma and thresholds")
    return Section("scores", "Score distributions", body)


def _clip(data: AudioReportData, detail: ClipDetail, folder: Path) -> Section:
    thresholds = {p.name: p.thresholds["block"] for p in data.points}
    save(block_scores_figure(detail.score, thresholds, detail.name), folder / "clip_blocks.png")
    save(band_error_figure(detail.score, detail.band_hz), folder / "clip_bands.png")
    body = (
        paragraph(
            f"{text(detail.name)}: clip score {detail.score.clip_score:.6g}, "
            f"{detail.score.block_scores.size} blocks."
        )
        + image("clip_blocks.png", "block scores over time with the block thresholds")
        + image("clip_bands.png", "worst block's reconstruction error per mel band")
    )
    return Section("clip", "One clip, block by block", body)


def audio_sections(data: AudioReportData, folder: Path) -> tuple[list[Section], dict[str, Any]]:
    """The sections (figures written into `folder`) and the figures they state, for JSON."""
    sections: list[Section] = []
    summary: dict[str, Any] = {}
    held_out = data.held_out
    if held_out is not None:
        roc = roc_of(held_out.clip_scores, held_out.clip_anomalous)
        sections += [
            _measured(held_out, data.points),
            _scores(data, held_out, folder),
            roc_section(roc, folder, scored="scored clips", pooled="All scored clips pooled"),
        ]
        summary = {
            "clips": {
                "normal": int((~held_out.clip_anomalous).sum()),
                "anomalous": int(held_out.clip_anomalous.sum()),
            },
            "auc_pooled": None if roc is None else roc.auc,
            "pauc_pooled": None if roc is None else roc.pauc,
            "measured": {name: r.as_json() for name, r in held_out.measured.items()},
        }
    if data.detail is not None:
        sections.append(_clip(data, data.detail, folder))
    return sections, summary

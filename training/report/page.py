"""The report page as plain HTML: escaped text, tables, images referenced relatively, one inline
style sheet; no scripts and nothing fetched from elsewhere. Also the sections both kinds of
bundle share: the bundle's facts, its operating points, its training history."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service.bundle.manifest import AudioManifest, TrainingHistory, WindowsManifest
from training.report.figures import loss_figure, roc_figure, save
from training.report.points import ShownPoint
from training.report.roc import RocCurve

INDEX_FILE = "index.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem;
       color: #1a202c; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem;
  border-bottom: 1px solid #cbd5e0; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #cbd5e0; padding: 0.25rem 0.55rem; text-align: left;
         vertical-align: top; }
th { background: #edf2f7; }
img { max-width: 100%; height: auto; display: block; margin: 0.6rem 0; }
.note { color: #4a5568; font-size: 0.92rem; }
"""


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    body: str  # HTML


def text(value: object) -> str:
    return html.escape(str(value))


def number(value: float | None, digits: int = 4) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.{digits}f}"


def figure(name: str, value: float | None) -> str:
    """A measured figure, marked so a reader (or a test) can find it by name."""
    return f'<span data-figure="{text(name)}">{number(value)}</span>'


def paragraph(content: str, note: bool = False) -> str:
    return f'<p class="note">{content}</p>' if note else f"<p>{content}</p>"


def table(headers: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    """A table, with a header row unless `headers` is None; `rows` hold HTML already escaped."""
    head = "" if headers is None else "".join(f"<th>{text(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def image(file_name: str, alt: str) -> str:
    return f'<img src="{text(file_name)}" alt="{text(alt)}">'


def render(title: str, sections: Sequence[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{text(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{text(title)}</h1>",
    ]
    parts += [
        f'<section id="{text(s.id)}"><h2>{text(s.title)}</h2>{s.body}</section>' for s in sections
    ]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def bundle_section(manifest: AudioManifest | WindowsManifest, data: str | None) -> Section:
    training = manifest.training
    model = (
        f"{manifest.backbone} backbone"
        if isinstance(manifest, AudioManifest)
        else f"{manifest.model_type}, window {manifest.window}, stride {manifest.stride}"
    )
    rows = [
        ("name", manifest.name),
        ("version", manifest.version),
        ("kind", f"{manifest.kind}: {model}"),
        ("created", manifest.created_at.isoformat(timespec="seconds")),
        ("description", manifest.description or "none"),
        (
            "trained on",
            f"{training.data} ({training.n_normal} normal, {training.n_anomaly} "
            f"anomalous examples; seed {training.seed})",
        ),
        ("reported on", data or "no data folder given (--data): only what the bundle holds"),
    ]
    return Section(
        "bundle",
        "Bundle and data",
        table(None, [(f"<strong>{text(k)}</strong>", text(v)) for k, v in rows]),
    )


def points_section(points: Sequence[ShownPoint], older: bool) -> Section:
    rows = []
    # How each prediction was made, once per wording, with the predictions made that way.
    methods: dict[str, list[str]] = {}
    for point in points:
        predicted = "; ".join(
            f"{number(p.rate)} per {p.per} ({p.confidence:.0%} interval {number(p.low)} to "
            f"{number(p.high)})"
            for p in point.predicted.values()
        )
        for p in point.predicted.values():
            methods.setdefault(p.method, []).append(f"{point.name} per {p.per}")
        rows.append(
            (
                text(point.name + (" (default)" if point.is_default else "")),
                text(f"{point.rule} at {point.target:g}"),
                text(", ".join(f"{unit} {value:.6g}" for unit, value in point.thresholds.items())),
                text(point.fitted),
                text(predicted or "not recorded"),
            )
        )
    body = table(
        ("operating point", "rule", "thresholds", "fitted on", "predicted false alarms"), rows
    )
    if methods:
        body += (
            "<ul>"
            + "".join(
                f'<li class="note">{text(", ".join(uses))}: {text(method)}</li>'
                for method, uses in methods.items()
            )
            + "</ul>"
        )
    if older:
        body += paragraph(
            "This bundle was written before bundles kept operating points and predicted "
            "false-alarm rates: its Gamma decisions are shown.",
            note=True,
        )
    return Section("operating-points", "Operating points", body)


def training_section(history: TrainingHistory | None, folder: Path) -> Section:
    if history is not None and not history.stages:
        body = paragraph(
            "This model was fitted without epochs (PCA, KMeansAD or kNN): it has no loss curve.",
            note=True,
        )
    elif history is None or not any(history.stages.values()):
        body = paragraph(
            "This bundle holds no training history (history.json): it was written before "
            "bundles kept one.",
            note=True,
        )
    else:
        save(loss_figure(history), folder / "loss.png")
        stages = ", ".join(
            f"{name}: {len(epochs)} epochs"
            + (f", kept epoch {history.best_epoch[name]}" if name in history.best_epoch else "")
            for name, epochs in history.stages.items()
        )
        body = paragraph(text(stages)) + image("loss.png", "training and validation loss per epoch")
    return Section("training", "Training and validation loss", body)


def roc_section(roc: RocCurve | None, folder: Path, *, scored: str, pooled: str) -> Section:
    """The ROC curve with AUC and pAUC of `scored` ("scored clips", "test steps"), described as
    `pooled` ("All scored clips pooled"); a note instead where they hold one class only."""
    if roc is None:
        body = paragraph(f"The {scored} hold only one class: no ROC curve.", note=True)
    else:
        save(roc_figure(roc), folder / "roc.png")
        body = paragraph(
            f"{pooled}: AUC {figure('auc', roc.auc)}, pAUC (false-positive rate up to "
            f"{roc.max_fpr:g}) {figure('pauc', roc.pauc)}."
        ) + image("roc.png", f"ROC curve of the {scored}' scores")
    return Section("roc", "ROC curve", body)

"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no pyplot state,
no display): score histograms with the fitted Gamma and the thresholds, the ROC curve, the loss per
epoch, a clip's block scores and its worst block's band error, a sensor series' scores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import NDArray
from scipy import stats

from service.bundle.manifest import GammaThreshold, TrainingHistory
from service.scoring.audio import ClipScore
from training.report.roc import RocCurve

DPI = 100
NORMAL_COLOUR = "#2b6cb0"
ANOMALY_COLOUR = "#c05621"
THRESHOLD_STYLES = ("-", "--", ":", "-.")
# A log axis once the scores span more than this ratio (1st to 99th percentile): anomalies
# often score orders of magnitude above normal data.
LOG_SPAN = 10.0
HISTOGRAM_BINS = 60


@dataclass(frozen=True)
class ScorePanel:
    """Normal and anomalous scores of one unit (clip, block, step) and its thresholds by name."""

    title: str
    normal: NDArray[np.float64]
    anomalous: NDArray[np.float64]
    gamma: GammaThreshold | None
    thresholds: dict[str, float]


def save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI, format="png")
    return path


def _draw_thresholds(axes: Axes, thresholds: dict[str, float], vertical: bool) -> None:
    for index, (name, value) in enumerate(thresholds.items()):
        style = THRESHOLD_STYLES[index % len(THRESHOLD_STYLES)]
        label = f"threshold {name} = {value:.4g}"
        if vertical:
            axes.axvline(value, color="#c53030", linestyle=style, linewidth=1.5, label=label)
        else:
            axes.axhline(value, color="#c53030", linestyle=style, linewidth=1.5, label=label)


def _is_log_scaled(values: NDArray[np.float64]) -> bool:
    positive = values[values > 0]
    if positive.size < 2:
        return False
    low, high = np.percentile(positive, [1, 99])
    return bool(high / low > LOG_SPAN)


def _histogram(axes: Axes, panel: ScorePanel) -> None:
    """Each class as its share of scores per bin, so classes of any size and bins of any width
    (log bins) compare; the Gamma as the share it expects per bin."""
    every = np.concatenate([panel.normal, panel.anomalous, list(panel.thresholds.values())])
    low, high = float(every.min()), float(every.max())
    if _is_log_scaled(every):
        low = float(every[every > 0].min())
        axes.set_xscale("log")
        edges = np.geomspace(low, max(high, low * 1.01), HISTOGRAM_BINS + 1)
    else:
        edges = np.linspace(low, max(high, low + 1e-9), HISTOGRAM_BINS + 1)
    for values, colour, name in (
        (panel.normal, NORMAL_COLOUR, "normal"),
        (panel.anomalous, ANOMALY_COLOUR, "anomalous"),
    ):
        if values.size:
            axes.hist(
                values,
                bins=edges.tolist(),
                weights=np.full(values.size, 1.0 / values.size),
                alpha=0.55,
                color=colour,
                label=f"{name} ({values.size})",
            )
    if panel.gamma is not None:
        expected = np.diff(stats.gamma.cdf(edges, panel.gamma.shape, scale=panel.gamma.scale))
        axes.stairs(
            expected,
            edges,
            color="black",
            linewidth=1.2,
            label=f"fitted Gamma (shape {panel.gamma.shape:.3g}, scale {panel.gamma.scale:.3g})",
        )
    _draw_thresholds(axes, panel.thresholds, vertical=True)
    axes.set_title(panel.title)
    axes.set_xlabel("score")
    axes.set_ylabel("share of the class's scores per bin")
    axes.legend(fontsize="small")


def score_histograms(panels: list[ScorePanel]) -> Figure:
    figure = Figure(figsize=(7.5, 3.6 * len(panels)), layout="constrained")
    for axes, panel in zip(
        figure.subplots(len(panels), 1, squeeze=False)[:, 0], panels, strict=True
    ):
        _histogram(axes, panel)
    return figure


def roc_figure(roc: RocCurve) -> Figure:
    figure = Figure(figsize=(5.5, 5.0), layout="constrained")
    axes = figure.subplots()
    axes.plot(
        roc.false_positive_rate,
        roc.true_positive_rate,
        color=ANOMALY_COLOUR,
        label=f"AUC {roc.auc:.4f}, pAUC (FPR <= {roc.max_fpr:g}) {roc.pauc:.4f}",
    )
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    axes.axvspan(0, roc.max_fpr, color="grey", alpha=0.12, label="pAUC range")
    axes.set_xlabel("false-positive rate")
    axes.set_ylabel("true-positive rate")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.legend(loc="lower right", fontsize="small")
    return figure


def loss_figure(history: TrainingHistory) -> Figure:
    """Training and validation loss per epoch, one panel per stage, the kept epoch marked."""
    stages = [(name, epochs) for name, epochs in history.stages.items() if epochs]
    figure = Figure(figsize=(7.5, 3.0 * max(1, len(stages))), layout="constrained")
    panels = figure.subplots(max(1, len(stages)), 1, squeeze=False)[:, 0]
    for axes, (name, epochs) in zip(panels, stages, strict=False):
        numbers = [e.epoch for e in epochs]
        axes.plot(numbers, [e.train_loss for e in epochs], marker=".", label="training loss")
        validation = [(e.epoch, e.validation_loss) for e in epochs if e.validation_loss is not None]
        if validation:
            axes.plot(*zip(*validation, strict=True), marker=".", label="validation loss")
        if name in history.best_epoch:
            axes.axvline(
                history.best_epoch[name],
                color="grey",
                linestyle="--",
                label=f"kept epoch {history.best_epoch[name]}",
            )
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.set_ylabel("loss")
        axes.legend(fontsize="small")
    return figure


def block_scores_figure(clip: ClipScore, thresholds: dict[str, float], title: str) -> Figure:
    figure = Figure(figsize=(7.5, 3.4), layout="constrained")
    axes = figure.subplots()
    centres = (clip.block_start_s + clip.block_end_s) / 2
    axes.step(centres, clip.block_scores, where="mid", color=NORMAL_COLOUR, label="block score")
    axes.plot(
        centres[clip.worst_block],
        clip.block_scores[clip.worst_block],
        "o",
        color=ANOMALY_COLOUR,
        label="worst block",
    )
    _draw_thresholds(axes, thresholds, vertical=False)
    if _is_log_scaled(np.concatenate([clip.block_scores, list(thresholds.values())])):
        axes.set_yscale("log")
    axes.set_title(title)
    axes.set_xlabel("time (s), block centre")
    axes.set_ylabel("block score")
    axes.legend(fontsize="small")
    return figure


def band_error_figure(clip: ClipScore, band_hz: NDArray[np.float64]) -> Figure:
    figure = Figure(figsize=(7.5, 3.4), layout="constrained")
    axes = figure.subplots()
    axes.plot(band_hz, clip.worst_band_error, color=ANOMALY_COLOUR)
    axes.set_xscale("log")
    start, end = clip.block_start_s[clip.worst_block], clip.block_end_s[clip.worst_block]
    axes.set_title(f"worst block ({start:.2f}-{end:.2f} s): reconstruction error per mel band")
    axes.set_xlabel("mel band centre (Hz)")
    axes.set_ylabel("band error")
    return figure


def series_figure(
    scores: NDArray[np.float64],
    anomalous: NDArray[np.bool_],
    segments: NDArray[np.int64],
    part_starts: list[int],
    thresholds: dict[str, float],
) -> Figure:
    """Per-step scores with the labelled anomalous segments shaded and the thresholds drawn."""
    figure = Figure(figsize=(11.0, 3.8), layout="constrained")
    axes = figure.subplots()
    steps = np.arange(scores.size)
    axes.plot(steps, scores, color=NORMAL_COLOUR, linewidth=0.6, label="step score")
    for index, (start, end) in enumerate(segments):
        axes.axvspan(
            start,
            end,
            color=ANOMALY_COLOUR,
            alpha=0.25,
            linewidth=0,
            label=f"labelled anomalous ({segments.shape[0]} segments)" if index == 0 else None,
        )
    for start in part_starts[1:]:
        axes.axvline(start, color="grey", linewidth=0.4, alpha=0.6)
    _draw_thresholds(axes, thresholds, vertical=False)
    if _is_log_scaled(np.concatenate([scores, list(thresholds.values())])):
        axes.set_yscale("log")
    axes.set_xlim(0, max(1, scores.size - 1))
    axes.set_title(
        f"{scores.size} test steps, {int(anomalous.sum())} labelled anomalous"
        + (f"; grey lines separate {len(part_starts)} parts" if len(part_starts) > 1 else "")
    )
    axes.set_xlabel("test step")
    axes.set_ylabel("score")
    axes.legend(fontsize="small", loc="upper right")
    return figure

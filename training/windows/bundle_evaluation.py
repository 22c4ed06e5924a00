"""Evaluate a windows bundle exactly as the service scores: ONNX Runtime through `WindowsScorer`,
thresholds from the manifest, metrics on the labelled test parts of a data set: point-wise,
point-adjusted and threshold-free ones, and the event figures an operator sees (false alarms per
1,440 normal steps, share of labelled segments alarmed, steps to the first alarm)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.bundle.loader import load_bundle
from service.bundle.manifest import Evaluation, ManifestError, WindowsManifest
from service.scoring.windows import WindowsScorer
from training.windows.drift import drift_warning
from training.windows.events import SegmentAlarm, event_figures
from training.windows.metrics import detection_metrics, interpretation_hit_rate, thresholded_metrics
from training.windows.series import SensorData

# The prefix of each operating point's figures; the chosen point's also appear unprefixed.
PREFIXES = {"gamma": "gamma_", "percentile": "pct_", "false_alarm_rate": "far_"}
PREDICTED_UNIT = "1440 steps"


@dataclass(frozen=True)
class StepPoint:
    name: str
    rule: str
    threshold: float
    predicted_per_1440: float | None = None


@dataclass(frozen=True)
class BundleEvaluation:
    operating_point: str  # the point whose figures are unprefixed
    metrics: dict[str, float]
    segments: tuple[SegmentAlarm, ...]  # at that point
    warnings: tuple[str, ...]


def step_points(manifest: WindowsManifest) -> list[StepPoint]:
    """The bundle's operating points; older bundles hold only the Gamma and percentile ones."""
    if manifest.operating_points:
        return [
            StepPoint(
                p.name,
                p.rule,
                p.thresholds["step"],
                p.predicted[PREDICTED_UNIT].rate if PREDICTED_UNIT in p.predicted else None,
            )
            for p in manifest.operating_points
        ]
    points = [StepPoint("gamma", "gamma", manifest.step_decision.threshold)]
    if manifest.percentile_threshold is not None:
        points.append(StepPoint("percentile", "percentile", manifest.percentile_threshold))
    return points


def choose_point(manifest: WindowsManifest, choice: str | None) -> StepPoint:
    """`choice` by name or rule; None: the bundle's default (Gamma for older bundles)."""
    points = step_points(manifest)
    wanted = choice or manifest.default_operating_point or "gamma"
    for point in [p for p in points if p.name == wanted] + [p for p in points if p.rule == wanted]:
        return point
    raise ManifestError(
        f"no operating point {wanted!r}; the bundle has {', '.join(p.name for p in points)}"
    )


def evaluate_bundle_in_full(
    bundle_dir: Path, data: SensorData, operating_point: str | None = None
) -> BundleEvaluation:
    """Every metric at the chosen operating point (unprefixed), the thresholded and event ones
    again at each operating point under its prefix (`gamma_`, `pct_`, `far_`), HitRate@100% and
    @150% of the contributing channels where the data names them (SMD), and the size of the
    test data."""
    bundle = load_bundle(Path(bundle_dir))
    if not isinstance(bundle.manifest, WindowsManifest):
        raise ValueError(f"{bundle_dir} holds a {bundle.manifest.kind} bundle, not a windows one")
    manifest = bundle.manifest
    expected = tuple(c.name for c in manifest.channels)
    if data.channels != expected:
        raise ValueError(
            f"{data.name} has channels {list(data.channels)[:5]}... ({len(data.channels)}), "
            f"the bundle expects {list(expected)[:5]}... ({len(expected)})"
        )
    if not data.test:
        raise ValueError(f"{data.name} has no labelled test data to evaluate on")
    chosen = choose_point(manifest, operating_point)
    step_seconds = manifest.step_seconds or data.step_seconds
    warning = drift_warning(f"the test data of {data.name}", data.test_values, manifest.channels)
    scorer = WindowsScorer(bundle)
    results = [scorer.score(part.values) for part in data.test]
    part_scores = [r.scores for r in results]
    part_labels = [part.labels for part in data.test if part.labels is not None]
    scores = np.concatenate(part_scores)
    labels = data.test_labels
    chosen_events = event_figures(part_scores, part_labels, chosen.threshold)
    metrics = {
        **detection_metrics(scores, labels, chosen.threshold, manifest.window),
        **chosen_events.as_metrics(step_seconds),
        "threshold": chosen.threshold,
    }
    for point in step_points(manifest):
        prefix = PREFIXES[point.rule]
        figures = {
            **thresholded_metrics(scores, labels, point.threshold),
            **event_figures(part_scores, part_labels, point.threshold).as_metrics(step_seconds),
            "threshold": point.threshold,
        }
        if point.predicted_per_1440 is not None:
            figures["predicted_false_alarms_per_1440_steps"] = point.predicted_per_1440
            if point == chosen:
                metrics["predicted_false_alarms_per_1440_steps"] = point.predicted_per_1440
        metrics.update({f"{prefix}{key}": value for key, value in figures.items()})
    if data.interpretations:
        # How often the channels the service names for an anomaly are the ones SMD's authors name.
        errors = np.concatenate([r.channel_error for r in results])
        events = [(e.start, e.end, e.channels) for e in data.interpretations]
        metrics["hit_rate_100"] = interpretation_hit_rate(errors, events, 100.0)
        metrics["hit_rate_150"] = interpretation_hit_rate(errors, events, 150.0)
    metrics["n_steps"] = float(labels.shape[0])
    metrics["n_anomalous_steps"] = float(labels.sum())
    metrics["n_segments"] = float(len(chosen_events.segments))
    return BundleEvaluation(
        operating_point=chosen.name,
        metrics=metrics,
        segments=chosen_events.segments,
        warnings=(warning,) if warning else (),
    )


def evaluate_bundle(
    bundle_dir: Path, data: SensorData, operating_point: str | None = None
) -> dict[str, float]:
    """The flat figures of `evaluate_bundle_in_full`."""
    return evaluate_bundle_in_full(bundle_dir, data, operating_point).metrics


def as_evaluation(metrics: dict[str, float], data: SensorData) -> Evaluation:
    """The manifest's record of an evaluation (steps counted as the examples)."""
    n_anomalous = int(metrics["n_anomalous_steps"])
    keys = (
        "f1_pa",
        "precision_pa",
        "recall_pa",
        "auc_pr",
        "vus_pr",
        "false_alarms_per_1440_steps",
        "segments_alarmed",
    )
    return Evaluation(
        data=f"{data.source} (test parts)",
        n_normal=int(metrics["n_steps"]) - n_anomalous,
        n_anomaly=n_anomalous,
        precision=metrics["precision"],
        recall=metrics["recall"],
        f1=metrics["f1"],
        extra={key: metrics[key] for key in keys if np.isfinite(metrics[key])},
    )

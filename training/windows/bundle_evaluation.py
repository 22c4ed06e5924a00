"""Evaluate a windows bundle exactly as the service scores: ONNX Runtime through `WindowsScorer`,
thresholds from the manifest, metrics on the labelled test parts of a data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.bundle.loader import load_bundle
from service.bundle.manifest import Evaluation, WindowsManifest
from service.scoring.windows import WindowsScorer
from training.windows.evaluation import at_both_thresholds
from training.windows.metrics import anomaly_segments, interpretation_hit_rate
from training.windows.series import SensorData


def evaluate_bundle(bundle_dir: Path, data: SensorData) -> dict[str, float]:
    """Every metric at the bundle's Gamma threshold, the thresholded ones again at its
    percentile threshold (`pct_` names), HitRate@100% and @150% of the contributing channels
    where the data names them (SMD), and the size of the test data."""
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
    scorer = WindowsScorer(bundle)
    results = [scorer.score(part.values) for part in data.test]
    scores = np.concatenate([r.scores for r in results])
    labels = data.test_labels
    metrics = at_both_thresholds(
        scores,
        labels,
        manifest.step_decision.threshold,
        manifest.percentile_threshold,
        manifest.window,
    )
    if data.interpretations:
        # How often the channels the service names for an anomaly are the ones SMD's authors name.
        errors = np.concatenate([r.channel_error for r in results])
        events = [(e.start, e.end, e.channels) for e in data.interpretations]
        metrics["hit_rate_100"] = interpretation_hit_rate(errors, events, 100.0)
        metrics["hit_rate_150"] = interpretation_hit_rate(errors, events, 150.0)
    metrics["n_steps"] = float(labels.shape[0])
    metrics["n_anomalous_steps"] = float(labels.sum())
    metrics["n_segments"] = float(anomaly_segments(labels).shape[0])
    return metrics


def as_evaluation(metrics: dict[str, float], data: SensorData) -> Evaluation:
    """The manifest's record of an evaluation (steps counted as the examples)."""
    n_anomalous = int(metrics["n_anomalous_steps"])
    return Evaluation(
        data=f"{data.source} (test parts)",
        n_normal=int(metrics["n_steps"]) - n_anomalous,
        n_anomaly=n_anomalous,
        precision=metrics["precision"],
        recall=metrics["recall"],
        f1=metrics["f1"],
        extra={
            key: metrics[key] for key in ("f1_pa", "precision_pa", "recall_pa", "auc_pr", "vus_pr")
        },
    )

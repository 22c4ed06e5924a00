"""Thresholds fitted on held-out training scores only, and the metrics on labelled test parts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from torch import nn

from service.bundle.manifest import ChannelStats, GammaThreshold
from service.features.windows import standardise
from training.thresholds import gamma_threshold, percentile_threshold
from training.windows.config import WindowsConfig
from training.windows.metrics import detection_metrics, thresholded_metrics
from training.windows.scoring import score_series
from training.windows.series import SensorData

VALIDATION_SCORES = "per-step scores of the held-out blocks of the training data"


@dataclass(frozen=True)
class Thresholds:
    gamma: GammaThreshold
    percentile: float
    percentile_value: float


def fit_thresholds(scores: NDArray[np.float64], config: WindowsConfig) -> Thresholds:
    return Thresholds(
        gamma=gamma_threshold(scores, config.gamma_r, VALIDATION_SCORES),
        percentile=config.percentile,
        percentile_value=percentile_threshold(scores, config.percentile),
    )


def score_test(
    scoring: nn.Module, data: SensorData, stats: list[ChannelStats], config: WindowsConfig
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-step scores and channel errors of every test part, concatenated in order."""
    if not data.test:
        raise ValueError(f"{data.name} has no labelled test data")
    mean, std = [c.mean for c in stats], [c.std for c in stats]
    results = [
        score_series(scoring, standardise(part.values, mean, std), config.window, config.stride)
        for part in data.test
    ]
    return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def metrics_at_thresholds(
    scores: NDArray[np.float64],
    labels: NDArray[np.bool_],
    thresholds: Thresholds,
    window: int,
) -> dict[str, float]:
    """Every metric at the Gamma threshold (the served one), and the thresholded ones again at
    the training-score percentile under `pct_` names."""
    return at_both_thresholds(
        scores, labels, thresholds.gamma.threshold, thresholds.percentile_value, window
    )


def at_both_thresholds(
    scores: NDArray[np.float64],
    labels: NDArray[np.bool_],
    gamma: float,
    percentile: float | None,
    window: int,
) -> dict[str, float]:
    metrics = {**detection_metrics(scores, labels, gamma, window), "threshold": gamma}
    if percentile is not None:
        at_percentile = thresholded_metrics(scores, labels, percentile)
        metrics.update({f"pct_{key}": value for key, value in at_percentile.items()})
        metrics["pct_threshold"] = percentile
    return metrics

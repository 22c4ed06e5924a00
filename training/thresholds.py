"""Gamma fits to anomaly scores and the thresholds they give at an accepted-normal quantile r."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from service.bundle.manifest import GammaThreshold


def fit_gamma(scores: ArrayLike) -> tuple[float, float]:
    """Maximum-likelihood Gamma(shape, scale) with location fixed at 0, as scores are >= 0."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size < 2:
        raise ValueError(f"need at least 2 scores to fit a Gamma, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores must be finite to fit a Gamma")
    if np.any(values < 0):
        raise ValueError("scores must be non-negative to fit a Gamma")
    # Exact zeros make the log-likelihood -inf; nudge them to the smallest positive score seen.
    positive = values[values > 0]
    if positive.size == 0:
        raise ValueError("all scores are zero; a Gamma cannot be fitted")
    values = np.maximum(values, positive.min())
    if np.ptp(values) <= 1e-12 * values.mean():
        raise ValueError("scores are all equal; a Gamma cannot be fitted")
    shape, _, scale = stats.gamma.fit(values, floc=0.0)
    return float(shape), float(scale)


def gamma_threshold(scores: ArrayLike, r: float, fitted_on: str) -> GammaThreshold:
    """Fit a Gamma to `scores` and place the threshold where its CDF equals r."""
    if not 0.0 < r < 1.0:
        raise ValueError(f"r must lie strictly between 0 and 1, got {r}")
    shape, scale = fit_gamma(scores)
    threshold = float(stats.gamma.ppf(r, shape, scale=scale))
    return GammaThreshold(
        shape=shape,
        scale=scale,
        r=r,
        threshold=threshold,
        fitted_on=fitted_on,
        n_scores=int(np.asarray(scores).size),
    )


def percentile_threshold(scores: ArrayLike, percentile: float) -> float:
    """The training-score percentile (0-100) used as a distribution-free alternative."""
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must lie strictly between 0 and 100, got {percentile}")
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("no scores to take a percentile of")
    return float(np.percentile(values, percentile))

"""Gamma fits to anomaly scores and the thresholds they give at an accepted-normal quantile r."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from service.bundle.manifest import FalseAlarmPrediction, GammaThreshold


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


def false_alarm_quantile(scores: ArrayLike, rate: float) -> float | None:
    """The split-conformal threshold for a false-alarm budget: the k-th smallest of n normal
    scores with k = ceil((n + 1) * (1 - rate)), which a new score exchangeable with them exceeds
    with probability at most `rate`, whatever their distribution. None when the scores are too
    few to hold such a score (n < 1 / rate - 1)."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"the false-alarm rate must lie strictly between 0 and 1, got {rate}")
    values = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if values.size == 0:
        raise ValueError("no scores to take a quantile of")
    k = math.ceil((values.size + 1) * (1.0 - rate) - 1e-9)
    return float(values[k - 1]) if k <= values.size else None


def predicted_false_alarms(
    scores: ArrayLike,
    groups: ArrayLike,
    threshold: float,
    per: str,
    confidence: float = 0.95,
    group_name: str = "recordings",
) -> FalseAlarmPrediction:
    """The share of normal `scores` above `threshold`, with a Clopper-Pearson interval that
    takes the independent `groups` (recordings, series) as the effective sample size, not the
    scores: scores of one recording rise and fall together, so many scores of few recordings
    are worth little more than the recordings. The share times the groups is rounded down for
    the lower bound and up for the upper one, which keeps the interval conservative."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    owners = np.asarray(groups).ravel()
    if values.size == 0 or values.size != owners.size:
        raise ValueError("need one group per score, and at least one score")
    n = int(np.unique(owners).size)
    rate = float(np.mean(values > threshold))
    alpha = 1.0 - confidence
    low_count, high_count = math.floor(rate * n + 1e-9), math.ceil(rate * n - 1e-9)
    low = 0.0 if low_count == 0 else float(stats.beta.ppf(alpha / 2, low_count, n - low_count + 1))
    high = (
        1.0
        if high_count >= n
        else float(stats.beta.ppf(1 - alpha / 2, high_count + 1, n - high_count))
    )
    return FalseAlarmPrediction(
        rate=rate,
        low=min(low, rate),
        high=max(high, rate),
        confidence=confidence,
        per=per,
        method=(
            f"share of {values.size} normal scores above the threshold; {confidence:.0%} "
            f"Clopper-Pearson interval with the {n} {group_name} as the effective sample size"
        ),
    )

"""Gamma fits recover known parameters, thresholds sit at the asked quantile, and unusable
scores are refused."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from training.thresholds import (
    false_alarm_quantile,
    fit_gamma,
    gamma_threshold,
    percentile_threshold,
    predicted_false_alarms,
)


@pytest.mark.parametrize(("shape", "scale"), [(2.0, 0.5), (9.0, 3.0), (0.8, 12.0)])
def test_fit_gamma_recovers_shape_and_scale(shape: float, scale: float) -> None:
    draws = np.random.default_rng(7).gamma(shape, scale, size=20_000)
    fitted_shape, fitted_scale = fit_gamma(draws)
    assert fitted_shape == pytest.approx(shape, rel=0.05)
    assert fitted_scale == pytest.approx(scale, rel=0.05)


def test_threshold_is_the_inverse_cdf_at_r_and_flags_about_one_minus_r() -> None:
    rng = np.random.default_rng(3)
    draws = rng.gamma(4.0, 2.0, size=20_000)
    threshold = gamma_threshold(draws, 0.99, fitted_on="synthetic draws")
    assert threshold.threshold == pytest.approx(
        stats.gamma.ppf(0.99, threshold.shape, scale=threshold.scale)
    )
    assert threshold.threshold == pytest.approx(stats.gamma.ppf(0.99, 4.0, scale=2.0), rel=0.03)
    fresh = rng.gamma(4.0, 2.0, size=50_000)
    assert np.mean(fresh > threshold.threshold) == pytest.approx(0.01, abs=0.003)
    assert threshold.n_scores == draws.size
    assert threshold.fitted_on == "synthetic draws"


def test_a_higher_r_gives_a_higher_threshold() -> None:
    draws = np.random.default_rng(5).gamma(3.0, 1.0, size=2_000)
    thresholds = [gamma_threshold(draws, r, "draws").threshold for r in (0.8, 0.95, 0.99, 0.999)]
    assert thresholds == sorted(thresholds)
    assert len(set(thresholds)) == 4


def test_exact_zeros_do_not_break_the_fit() -> None:
    draws = np.random.default_rng(1).gamma(2.0, 1.0, size=1_000)
    draws[:5] = 0.0
    shape, scale = fit_gamma(draws)
    assert np.isfinite(shape)
    assert np.isfinite(scale)
    assert shape > 0
    assert scale > 0


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([1.0], "at least 2"),
        ([1.0, np.nan, 2.0], "finite"),
        ([1.0, -0.5, 2.0], "non-negative"),
        ([0.0, 0.0, 0.0], "all scores are zero"),
        ([2.0, 2.0, 2.0], "all equal"),
    ],
)
def test_unusable_scores_are_refused_with_a_reason(scores: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_gamma(scores)


@pytest.mark.parametrize("r", [0.0, 1.0, -0.1, 1.5])
def test_r_outside_the_open_unit_interval_is_refused(r: float) -> None:
    with pytest.raises(ValueError, match="r must lie strictly between 0 and 1"):
        gamma_threshold([1.0, 2.0, 3.0], r, "draws")


def test_percentile_threshold() -> None:
    values = np.arange(101, dtype=float)
    assert percentile_threshold(values, 99.0) == pytest.approx(99.0)
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile_threshold(values, 100.0)
    with pytest.raises(ValueError, match="no scores"):
        percentile_threshold([], 50.0)


def test_false_alarm_quantile_is_the_split_conformal_order_statistic() -> None:
    scores = np.arange(1.0, 200.0)  # 199 scores: ceil(200 x 0.99) = 198th smallest
    assert false_alarm_quantile(scores, 0.01) == 198.0
    assert false_alarm_quantile(scores[:99], 0.01) == 99.0  # 99 scores: the largest
    assert false_alarm_quantile(scores[:98], 0.01) is None  # too few for a 1 % budget
    assert false_alarm_quantile(np.arange(1.0, 10.0), 0.5) == 5.0  # ceil(10 x 0.5) = 5th
    # Over many draws, a fresh score exceeds it about `rate` of the time, not more.
    rng = np.random.default_rng(0)
    draws = rng.gamma(2.0, 1.0, (4000, 100))
    thresholds = np.array([false_alarm_quantile(d, 0.05) for d in draws])
    fresh = rng.gamma(2.0, 1.0, 4000)
    assert np.mean(fresh > thresholds) == pytest.approx(5 / 101, abs=0.01)
    with pytest.raises(ValueError, match="between 0 and 1"):
        false_alarm_quantile(scores, 0.0)


def test_predicted_false_alarms_counts_scores_and_takes_recordings_as_the_sample() -> None:
    # 4 recordings of 25 scores each; 10 of the 100 scores lie above the threshold.
    scores = np.r_[np.full(90, 1.0), np.full(10, 3.0)]
    recordings = np.repeat(np.arange(4), 25)
    predicted = predicted_false_alarms(scores, recordings, 2.0, "clip")
    assert predicted.rate == pytest.approx(10 / 100)  # per score, not per recording
    # Clopper-Pearson on the 4 recordings: 0.1 x 4 = 0.4 rounds down to 0 and up to 1.
    assert predicted.low == 0.0
    assert predicted.high == pytest.approx(stats.beta.ppf(0.975, 2, 3))
    assert predicted.per == "clip"
    assert "4 recordings as the effective sample size" in predicted.method

    # The same share over 40 recordings gives a narrower interval around it.
    many = predicted_false_alarms(scores, np.arange(100) % 40, 2.0, "clip")
    assert many.rate == predicted.rate
    assert many.low == pytest.approx(stats.beta.ppf(0.025, 4, 37))
    assert many.high == pytest.approx(stats.beta.ppf(0.975, 5, 36))
    assert predicted.low <= many.low < many.high < predicted.high

    nothing = predicted_false_alarms(scores, recordings, 5.0, "block")
    assert (nothing.rate, nothing.low) == (0.0, 0.0)
    assert nothing.high == pytest.approx(1 - 0.025 ** (1 / 4))

"""Decision turns scores into verdicts: anomaly iff the score lies above the threshold."""

from __future__ import annotations

import numpy as np
import pytest

from service.scoring.decision import Decision, NonFiniteError, Verdict


def test_a_score_above_the_threshold_is_an_anomaly() -> None:
    decide = Decision(threshold=2.0)
    assert decide(3.0) == Verdict(anomaly=True, ratio=1.5)
    assert decide(1.0) == Verdict(anomaly=False, ratio=0.5)


def test_a_score_equal_to_the_threshold_is_normal() -> None:
    verdict = Decision(threshold=0.25)(0.25)
    assert not verdict.anomaly
    assert verdict.ratio == 1.0


def test_anomalies_flags_each_score() -> None:
    scores = np.array([0.1, 0.5, 0.50001, 2.0, 0.0], dtype=np.float32)
    flags = Decision(threshold=0.5).anomalies(scores)
    assert flags.dtype == np.bool_
    np.testing.assert_array_equal(flags, [False, False, True, True, False])


def test_verdicts_are_plain_python_values() -> None:
    verdict = Decision(threshold=0.5)(np.float32(0.75))
    assert type(verdict.anomaly) is bool
    assert type(verdict.ratio) is float


@pytest.mark.parametrize("threshold", [0.0, -1.0, float("nan"), float("inf")])
def test_a_threshold_must_be_positive_and_finite(threshold: float) -> None:
    with pytest.raises(ValueError, match="positive and finite"):
        Decision(threshold=threshold)


@pytest.mark.parametrize("score", [float("nan"), float("inf"), -float("inf")])
def test_a_score_that_is_not_finite_gets_no_verdict(score: float) -> None:
    decide = Decision(threshold=0.5)
    with pytest.raises(NonFiniteError, match="1 of the 1 scores are not finite"):
        decide(score)
    with pytest.raises(NonFiniteError, match="1 of the 3 scores are not finite"):
        decide.anomalies(np.array([0.1, score, 0.2]))
    with pytest.raises(NonFiniteError):
        decide.ratios(np.array([score]))

"""The promotion rule: a challenger is promoted only when none of its AUCs is lower than the
champion's and its false alarms are not significantly over the budget."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from training.retrain.promotion import FoldScores, decide, false_alarm_p_value

NORMAL = np.linspace(0.0, 1.0, 20)


def _folds(anomalous: list[float], normal_events: list[float]) -> list[FoldScores]:
    return [FoldScores(np.array(anomalous), np.array(normal_events), NORMAL)]


def _decide(
    folds: list[FoldScores],
    false_alarms: int = 0,
    test_recordings_auc: tuple[float, float] | None = None,
) -> bool:
    """Whether a challenger scoring like the champion on the folds is promoted."""
    decision = decide(folds, folds, false_alarms, 0, 30, 0.01, 0.05, test_recordings_auc)
    return decision.promoted


def test_an_equal_challenger_within_budget_is_promoted() -> None:
    folds = _folds([2.0, 3.0], [0.5])
    decision = decide(folds, folds, 0, 0, 30, 0.01)
    assert decision.promoted
    assert decision.reason.startswith("promoted")
    assert decision.figures["challenger_auc"] == decision.figures["champion_auc"]


def test_a_lower_auc_on_the_labelled_events_refuses() -> None:
    champion = _folds([2.0, 3.0], [0.5])  # the false alarm below every anomaly: AUC 1
    challenger = _folds([2.0, 3.0], [2.5])  # it ranks the false alarm above an anomaly
    decision = decide(challenger, champion, 0, 0, 30, 0.01)
    assert not decision.promoted
    assert decision.figures["challenger_auc"] < decision.figures["champion_auc"]


def test_a_lower_auc_against_the_normal_data_refuses_even_when_events_agree() -> None:
    """Labels that agree with one another can favour the challenger on the events; ranking the
    confirmed anomalies lower among the normal recordings still refuses it."""
    champion = _folds([2.0, 3.0], [2.5, 2.6, 2.7])
    challenger = _folds([0.97, 3.0], [0.0, 0.0, 0.0])
    decision = decide(challenger, champion, 0, 0, 30, 0.01)
    assert decision.figures["challenger_auc"] > decision.figures["champion_auc"]
    assert not decision.promoted


def test_a_lower_auc_on_the_datas_anomalous_recordings_refuses() -> None:
    folds = _folds([2.0, 3.0], [0.5])
    assert _decide(folds, test_recordings_auc=(1.0, 1.0))
    assert not _decide(folds, test_recordings_auc=(0.95, 1.0))


def test_false_alarms_significantly_over_the_budget_refuse() -> None:
    folds = _folds([2.0, 3.0], [0.5])
    # 30 check clips at a budget of 0.01: one false alarm is plausible, two are not (p < 0.05).
    assert _decide(folds, false_alarms=1)
    assert not _decide(folds, false_alarms=2)


@pytest.mark.parametrize("false_alarms", [0, 1, 2, 5])
def test_the_p_value_is_the_binomial_tail(false_alarms: int) -> None:
    expected = 1.0 - stats.binom.cdf(false_alarms - 1, 30, 0.01) if false_alarms else 1.0
    assert false_alarm_p_value(false_alarms, 30, 0.01) == pytest.approx(expected)

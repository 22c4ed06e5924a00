"""The promotion rule: a challenger replaces the champion only if its ROC-AUC on labelled events
it never trained on is not lower, and its false alarms on held-out normal recordings are within
the budget (not significantly above it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

# A one-sided binomial test: the measured false alarms are "over the budget" only when they
# would be this unlikely at the budget's rate, so that a few dozen check clips do not refuse a
# challenger for one unlucky clip.
SIGNIFICANCE = 0.05
# AUCs closer than this count as equal (float noise of the same ranking).
AUC_TOLERANCE = 1e-9


@dataclass(frozen=True)
class FoldScores:
    """Scores by one model of one fold's held-out events and of the check normal clips."""

    anomalous: np.ndarray
    normal_events: np.ndarray
    normal_data: np.ndarray


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    y = np.r_[np.ones(positive.size), np.zeros(negative.size)]
    return float(roc_auc_score(y, np.r_[positive, negative]))


def mean_fold_auc(folds: Sequence[FoldScores], with_events: bool = True) -> float:
    """ROC-AUC of each fold's held-out anomalies against its normal clips (the events labelled
    normal and the check clips, or the check clips alone), averaged over folds: each fold's
    scores come from one model, so no AUC mixes two models' scales."""
    return float(
        np.mean(
            [
                _auc(
                    fold.anomalous,
                    np.r_[fold.normal_events, fold.normal_data]
                    if with_events
                    else fold.normal_data,
                )
                for fold in folds
            ]
        )
    )


_AGAINST = {
    "auc": "all held-out labelled events",
    "auc_normal_data": "held-out confirmed anomalies against held-out normal recordings",
    "auc_test_recordings": "the data's anomalous test recordings against held-out normal ones",
}


def false_alarm_p_value(false_alarms: int, clips: int, budget: float) -> float:
    """P(X >= false_alarms) for X ~ Binomial(clips, budget): how likely this many false alarms
    or more are if the true rate were the budget."""
    if false_alarms == 0:
        return 1.0
    return float(stats.binom.sf(false_alarms - 1, clips, budget))


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    figures: dict[str, float]


def decide(
    challenger: Sequence[FoldScores],
    champion: Sequence[FoldScores],
    challenger_false_alarms: int,
    champion_false_alarms: int,
    check_clips: int,
    budget: float,
    significance: float = SIGNIFICANCE,
    test_recordings_auc: tuple[float, float] | None = None,
) -> Decision:
    """Promote when the challenger's fold AUCs are not lower than the champion's, both on all
    held-out labelled events and on the confirmed anomalies against the held-out normal
    recordings alone, and its false alarms on the check clips are not significantly above
    `budget`. Where the bundle's data has anomalous test recordings, `test_recordings_auc`
    (challenger, champion) on them against the check clips must not be lower either.

    Labels that agree with one another can teach a challenger to win on them even when they are
    wrong; the second AUC keeps the normal recordings, which labels cannot change, on one side,
    and `test_recordings_auc` both sides. Only the latter refused the wrong-label challengers
    measured in docs/RESULTS.md ("Feedback rounds")."""
    aucs = {
        "auc": (mean_fold_auc(challenger), mean_fold_auc(champion)),
        "auc_normal_data": (
            mean_fold_auc(challenger, with_events=False),
            mean_fold_auc(champion, with_events=False),
        ),
    }
    if test_recordings_auc is not None:
        aucs["auc_test_recordings"] = test_recordings_auc
    p_value = false_alarm_p_value(challenger_false_alarms, check_clips, budget)
    alarms_ok = p_value >= significance
    challenger_rate = challenger_false_alarms / check_clips
    champion_rate = champion_false_alarms / check_clips
    reasons = []
    aucs_ok = True
    for name, (new, old) in aucs.items():
        ok = new >= old - AUC_TOLERANCE
        aucs_ok = aucs_ok and ok
        against = _AGAINST[name]
        reasons.append(
            f"AUC on {against} {new:.4f} against the champion's {old:.4f} "
            f"({'not lower' if ok else 'lower'})"
        )
    reasons.append(
        f"false-alarm rate on {check_clips} held-out normal clips {challenger_rate:.4f} "
        f"(champion {champion_rate:.4f}) against a budget of {budget:g} "
        f"(p = {p_value:.3g}: {'within' if alarms_ok else 'over'} the budget)"
    )
    promoted = aucs_ok and alarms_ok
    figures = {f"challenger_{name}": new for name, (new, _) in aucs.items()}
    figures.update({f"champion_{name}": old for name, (_, old) in aucs.items()})
    figures.update(
        challenger_false_alarm_rate=challenger_rate,
        champion_false_alarm_rate=champion_rate,
        check_clips=float(check_clips),
        false_alarm_budget=budget,
        false_alarm_p_value=p_value,
    )
    return Decision(
        promoted=promoted,
        reason=("promoted: " if promoted else "refused: ") + "; ".join(reasons),
        figures=figures,
    )

"""The served thresholds of an audio bundle, fitted on normal scores the final model did not train
on (out-of-fold or held-out recordings): the paper's Gamma at r, and the threshold that meets a
false-alarm budget per clip, each with the false-alarm rate it predicts and how sure that is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from service.bundle.manifest import (
    FalseAlarmPrediction,
    GammaThreshold,
    OperatingPoint,
    ThresholdFit,
)
from training.thresholds import false_alarm_quantile, gamma_threshold, predicted_false_alarms

ThresholdMethod = Literal["out_of_fold", "held_out"]
GAMMA_POINT = "gamma"
BUDGET_POINT = "false_alarm_rate"
# The budget point is the default: it is set from the rate the operator asked for, and it rests
# on the normal scores themselves wherever they are many enough to resolve that rate, instead of
# on the Gamma's tail, which held-out UAV flights showed to be too light (docs/TRAINING.md).
DEFAULT_POINT = BUDGET_POINT


@dataclass(frozen=True)
class ThresholdScores:
    """Clip and block scores of normal recordings the scoring model never trained on, each
    tagged with the index of its recording in `recording_ids`."""

    method: ThresholdMethod
    folds: int | None
    recording_ids: tuple[str, ...]
    clip: np.ndarray
    clip_recording: np.ndarray
    block: np.ndarray
    block_recording: np.ndarray

    @property
    def n_recordings(self) -> int:
        return int(np.unique(self.clip_recording).size)

    def describe(self) -> str:
        if self.method == "out_of_fold":
            return (
                f"out-of-fold scores of {self.n_recordings} normal training recordings "
                f"({self.folds} folds by recording, each scored by a model trained without it)"
            )
        return f"scores of {self.n_recordings} held-out normal recordings, final model"


@dataclass(frozen=True)
class FittedThresholds:
    clip_decision: GammaThreshold
    block_decision: GammaThreshold
    points: tuple[OperatingPoint, ...]
    default_point: str


def _budget_threshold(values: np.ndarray, rate: float, gamma: GammaThreshold) -> tuple[float, str]:
    """The budget threshold: the split-conformal quantile of the scores where they are enough
    (at least 1 / rate - 1), otherwise the Gamma fit's quantile at 1 - rate."""
    observed = false_alarm_quantile(values, rate)
    if observed is not None:
        return observed, "the split-conformal quantile of the scores"
    quantile = float(stats.gamma.ppf(1.0 - rate, gamma.shape, scale=gamma.scale))
    return quantile, (
        f"the Gamma fit's quantile, as {values.size} scores cannot resolve a rate of {rate:g}"
    )


def _predictions(
    scores: ThresholdScores, clip: float, block: float, how: dict[str, str]
) -> dict[str, FalseAlarmPrediction]:
    predicted = {
        "clip": predicted_false_alarms(scores.clip, scores.clip_recording, clip, "clip"),
        "block": predicted_false_alarms(scores.block, scores.block_recording, block, "block"),
    }
    return {
        unit: p.model_copy(
            update={"method": f"{scores.describe()}; threshold: {how[unit]}; {p.method}"}
        )
        for unit, p in predicted.items()
    }


def fit_thresholds(scores: ThresholdScores, r: float, false_alarm_rate: float) -> FittedThresholds:
    """The gamma point (Gamma at r on the clip scores and on the block scores, the bundle's
    clip_decision and block_decision) and the false-alarm-rate point (per clip; its block
    threshold meets the same rate per block)."""
    if not 0.0 < false_alarm_rate < 1.0:
        raise ValueError(f"the false-alarm rate must lie between 0 and 1, got {false_alarm_rate}")
    where = scores.describe()
    clip = gamma_threshold(scores.clip, r, f"clip scores of {scores.clip.size} clips: {where}")
    block = gamma_threshold(scores.block, r, f"scores of {scores.block.size} blocks: {where}")
    fit = ThresholdFit(
        method=scores.method,
        folds=scores.folds,
        recordings=scores.n_recordings,
        n_scores=int(scores.clip.size),
    )
    gamma_how = f"Gamma inverse CDF at r = {r:g}"
    gamma_point = OperatingPoint(
        name=GAMMA_POINT,
        rule="gamma",
        target=r,
        thresholds={"clip": clip.threshold, "block": block.threshold},
        fit=fit,
        predicted=_predictions(
            scores, clip.threshold, block.threshold, {"clip": gamma_how, "block": gamma_how}
        ),
    )
    clip_budget, clip_how = _budget_threshold(scores.clip, false_alarm_rate, clip)
    block_budget, block_how = _budget_threshold(scores.block, false_alarm_rate, block)
    budget_point = OperatingPoint(
        name=BUDGET_POINT,
        rule="false_alarm_rate",
        target=false_alarm_rate,
        thresholds={"clip": clip_budget, "block": block_budget},
        fit=fit,
        predicted=_predictions(
            scores, clip_budget, block_budget, {"clip": clip_how, "block": block_how}
        ),
    )
    return FittedThresholds(clip, block, (gamma_point, budget_point), DEFAULT_POINT)

"""The step thresholds a windows bundle carries, each fitted on the held-out normal blocks of the
training data and never on test data: the Gamma inverse CDF at r (the method's), a percentile of
the held-out scores, and the lowest threshold whose alarm events on the held-out blocks stay
within a false-alarm budget (alarms per 10,000 steps, or per hour where the step interval is
known). Each comes with the false-alarm rate it predicts and an interval for it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from service.bundle.manifest import FalseAlarmPrediction, ThresholdFit
from training.windows.events import STEPS_PER_DAY_OF_MINUTES, alarm_counts

STEPS_PER_BUDGET_UNIT = 10_000
CONFIDENCE = 0.95
PREDICTION_METHOD = (
    "alarm events (runs of flagged steps) on the held-out normal blocks of the training data, "
    "scaled to the unit; exact Poisson interval for the event count"
)


@dataclass(frozen=True)
class FalseAlarmBudget:
    """`rate` alarm events per `per_steps` steps of normal signal, stated per `unit`."""

    rate: float
    per_steps: float
    unit: str

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"the false-alarm rate must be positive, got {self.rate}")
        if not self.per_steps > 0:
            raise ValueError(f"a budget's unit must span steps, got {self.per_steps}")

    @classmethod
    def from_rate(cls, rate: float, step_seconds: float | None) -> FalseAlarmBudget:
        """`rate` per hour where the step interval is known, else per 10,000 steps."""
        if step_seconds is None:
            return cls(rate, STEPS_PER_BUDGET_UNIT, f"{STEPS_PER_BUDGET_UNIT} steps")
        return cls(rate, 3600.0 / step_seconds, "hour")

    def describe(self) -> str:
        alarms = "false alarm" if self.rate == 1 else "false alarms"
        said = f"{self.rate:.4g} {alarms} per {self.unit}"
        if self.unit.endswith(" steps"):
            return said
        return f"{said} (one per {self.per_steps / self.rate:,.0f} steps)"


def prediction_units(step_seconds: float | None) -> dict[str, float]:
    """The units a predicted rate is stated in, with their length in steps."""
    units = {
        f"{STEPS_PER_DAY_OF_MINUTES} steps": float(STEPS_PER_DAY_OF_MINUTES),
        f"{STEPS_PER_BUDGET_UNIT} steps": float(STEPS_PER_BUDGET_UNIT),
    }
    if step_seconds is not None:
        units["hour"] = 3600.0 / step_seconds
    return units


def poisson_interval(events: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Garwood) interval for the mean of a Poisson count."""
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if events == 0 else float(stats.chi2.ppf(tail, 2 * events) / 2.0)
    high = float(stats.chi2.ppf(1.0 - tail, 2 * events + 2) / 2.0)
    return low, high


def predict(
    parts: Sequence[ArrayLike], threshold: float, units: dict[str, float]
) -> dict[str, FalseAlarmPrediction]:
    """The false-alarm rate `threshold` gives on `parts`, per unit, with its interval."""
    n_steps = sum(np.asarray(part).size for part in parts)
    events = int(alarm_counts(parts, [threshold])[0])
    low, high = poisson_interval(events)
    return {
        unit: FalseAlarmPrediction(
            rate=events * steps / n_steps,
            low=low * steps / n_steps,
            high=high * steps / n_steps,
            confidence=CONFIDENCE,
            per=unit,
            method=PREDICTION_METHOD,
        )
        for unit, steps in units.items()
    }


@dataclass(frozen=True)
class BudgetThreshold:
    threshold: float
    allowed_events: float
    # Whether the held-out data are too short to resolve the budget (it allows less than one
    # event there), so the threshold sits just above every held-out score.
    unresolved: bool


def budget_threshold(parts: Sequence[ArrayLike], budget: FalseAlarmBudget) -> BudgetThreshold:
    """The lowest held-out score such that neither it nor any higher threshold gives more alarm
    events on `parts` than the budget allows for their length. (Raising a threshold can split
    one event into two, so the event count is not monotone; this takes the safe side.)"""
    n_steps = sum(np.asarray(part).size for part in parts)
    if n_steps == 0:
        raise ValueError("no held-out scores to fit a false-alarm threshold on")
    allowed = budget.rate * n_steps / budget.per_steps
    candidates = np.unique(np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts]))
    descending = candidates[::-1]
    worst_above = np.maximum.accumulate(alarm_counts(parts, descending))
    meeting = np.flatnonzero(worst_above <= allowed)
    # The top candidate flags nothing, so `meeting` always holds index 0.
    # A threshold of 0 is not a threshold (manifests refuse it); scores of exactly 0 are rare.
    threshold = max(float(descending[meeting[-1]]), float(np.finfo(np.float64).tiny))
    return BudgetThreshold(threshold, allowed, unresolved=allowed < 1.0)


def fit_description(parts: Sequence[ArrayLike]) -> ThresholdFit:
    return ThresholdFit(
        method="held_out",
        recordings=len(parts),
        n_scores=sum(np.asarray(part).size for part in parts),
    )

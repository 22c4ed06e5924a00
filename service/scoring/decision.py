"""A threshold that turns scores into verdicts, kept apart from the scorer, which never sees it.
A score that is not a finite number gets no verdict: it is an error, never 'normal'."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


class NonFiniteError(ValueError):
    """Features or scores that are not finite numbers (input too loud or too large to score):
    there is no verdict to give."""


def require_finite(values: ArrayLike, what: str) -> None:
    """Raise NonFiniteError, naming `what`, unless every value is finite."""
    array = np.asarray(values)
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise NonFiniteError(
            f"{bad} of the {array.size} {what} are not finite numbers (the input is too large "
            "to score); no verdict can be given"
        )


@dataclass(frozen=True)
class Verdict:
    anomaly: bool
    ratio: float  # score / threshold: above 1 is an anomaly


@dataclass(frozen=True)
class Decision:
    threshold: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"a threshold must be positive and finite, got {self.threshold}")

    def __call__(self, score: float | np.floating[Any]) -> Verdict:
        """The verdict on one score: an anomaly iff it lies above the threshold."""
        require_finite(score, "scores")
        return Verdict(anomaly=bool(score > self.threshold), ratio=float(score / self.threshold))

    def anomalies(self, scores: ArrayLike) -> NDArray[np.bool_]:
        """Boolean array, True where a score lies above the threshold."""
        require_finite(scores, "scores")
        flags: NDArray[np.bool_] = np.asarray(scores) > self.threshold
        return flags

    def ratios(self, scores: ArrayLike) -> NDArray[np.float64]:
        """score / threshold for each score."""
        require_finite(scores, "scores")
        return np.asarray(scores, dtype=np.float64) / self.threshold

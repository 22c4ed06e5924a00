"""A threshold that turns scores into verdicts, kept apart from the scorer, which never sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


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
        return Verdict(anomaly=bool(score > self.threshold), ratio=float(score / self.threshold))

    def anomalies(self, scores: np.ndarray) -> np.ndarray:
        """Boolean array, True where a score lies above the threshold."""
        flags: np.ndarray = np.asarray(scores) > self.threshold
        return flags

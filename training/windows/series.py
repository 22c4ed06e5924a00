"""The in-memory form every loader returns: named channels, training and labelled test parts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class SeriesPart:
    """One contiguous recording: values [steps, channels] and, for test parts, a label per step."""

    name: str
    values: NDArray[np.float64]
    labels: NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        if self.values.ndim != 2:
            raise ValueError(f"part {self.name!r}: values must be steps x channels")
        if self.labels is not None and self.labels.shape != (self.values.shape[0],):
            raise ValueError(
                f"part {self.name!r}: {self.labels.shape[0]} labels for "
                f"{self.values.shape[0]} steps"
            )


@dataclass(frozen=True)
class LabelledEvent:
    """A labelled anomaly in the concatenated test steps [start, end] (inclusive) and the
    channels the data set's authors name as its cause (SMD's interpretation labels)."""

    start: int
    end: int
    channels: tuple[int, ...]


@dataclass(frozen=True)
class SensorData:
    name: str
    channels: tuple[str, ...]
    train: tuple[SeriesPart, ...]
    test: tuple[SeriesPart, ...]
    source: str
    interpretations: tuple[LabelledEvent, ...] = field(default=())
    # Seconds between steps where the data set documents it (SMD, PSM: 60; SKAB: 1), so that
    # false alarms can be stated per hour.
    step_seconds: float | None = None

    def __post_init__(self) -> None:
        if not self.train:
            raise ValueError(f"{self.name}: no training data")
        n_channels = len(self.channels)
        if len(set(self.channels)) != n_channels:
            raise ValueError(f"{self.name}: channel names must be unique")
        for part in (*self.train, *self.test):
            if part.values.shape[1] != n_channels:
                raise ValueError(
                    f"{self.name}: part {part.name!r} has {part.values.shape[1]} channels, "
                    f"expected {n_channels}"
                )
        for part in self.test:
            if part.labels is None:
                raise ValueError(f"{self.name}: test part {part.name!r} has no labels")

    @property
    def test_values(self) -> NDArray[np.float64]:
        return np.concatenate([part.values for part in self.test])

    @property
    def test_labels(self) -> NDArray[np.bool_]:
        return np.concatenate([part.labels for part in self.test if part.labels is not None])

    @property
    def n_train_steps(self) -> int:
        return sum(part.values.shape[0] for part in self.train)


def fill_gaps(values: NDArray[np.float64], what: str) -> NDArray[np.float64]:
    """Replace NaNs by the channel's last valid value (its first valid one before that): a sensor
    that misses a reading is best guessed by its previous one."""
    missing = np.isnan(values)
    if not missing.any():
        return values
    empty = np.flatnonzero(missing.all(axis=0))
    if empty.size:
        raise ValueError(f"{what}: channel(s) {empty.tolist()} have no valid value at all")
    steps = np.arange(values.shape[0])[:, None]
    last_valid = np.maximum.accumulate(np.where(missing, -1, steps), axis=0)
    first_valid = np.argmax(~missing, axis=0)
    index = np.where(last_valid < 0, first_valid[None, :], last_valid)
    return np.take_along_axis(values, index, axis=0)

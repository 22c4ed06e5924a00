"""Data at another operating point than the training data is named, in plain words."""

from __future__ import annotations

import numpy as np
import pytest

from service.bundle.manifest import ChannelStats
from training.windows.drift import channel_shifts, drift_warning

STATS = [
    ChannelStats(name="pressure", mean=10.0, std=2.0),
    ChannelStats(name="current", mean=1.0, std=0.5),
    ChannelStats(name="flow", mean=0.0, std=1.0),
]


def _readings(shift: tuple[float, float, float], spread: float = 1.0) -> np.ndarray:
    z = np.random.default_rng(0).normal(size=(2000, 3)) * spread + np.array(shift)
    return z * np.array([2.0, 0.5, 1.0]) + np.array([10.0, 1.0, 0.0])


def test_shifts_are_in_training_standard_deviations() -> None:
    shifts = channel_shifts(_readings((0.0, -40.0, 0.0)), STATS)
    assert [s.name for s in shifts] == ["pressure", "current", "flow"]
    assert shifts[1].mean == pytest.approx(-40.0, abs=0.1)
    assert shifts[0].mean == pytest.approx(0.0, abs=0.1)
    assert shifts[2].spread == pytest.approx(1.0, abs=0.05)


def test_data_at_the_training_operating_point_gets_no_warning() -> None:
    assert drift_warning("the test data", _readings((0.5, -0.5, 0.0)), STATS) is None


def test_a_shifted_operating_point_is_named_with_its_channels() -> None:
    warning = drift_warning("the test data of valve1", _readings((0.0, -40.0, 5.0)), STATS)
    assert warning is not None
    assert warning.startswith("the test data of valve1 runs at another operating point")
    assert "2 of 3 channels" in warning
    # The farthest channel first, with its shift.
    assert warning.index("current -40.0 sd") < warning.index("flow +5.0 sd")
    assert "pressure" not in warning
    assert "docs/TRAINING.md" in warning


def test_a_channel_that_varies_far_more_than_in_training_is_named() -> None:
    warning = drift_warning("the test data", _readings((0.0, 0.0, 0.0), spread=5.0), STATS)
    assert warning is not None
    assert "pressure x5.0" in warning

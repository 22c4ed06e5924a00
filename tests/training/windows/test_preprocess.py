"""Channel statistics, the blocked validation split and training windows."""

from __future__ import annotations

import numpy as np
import pytest

from training.windows.preprocess import (
    fit_channel_stats,
    training_windows,
    validation_split,
)
from training.windows.series import SeriesPart, fill_gaps


def _part(steps: int, channels: int = 2, labels: np.ndarray | None = None) -> SeriesPart:
    values = np.arange(steps * channels, dtype=np.float64).reshape(steps, channels)
    return SeriesPart("p", values, labels)


def test_channel_stats_come_from_training_data_and_constant_channels_get_scale_1() -> None:
    values = np.column_stack([np.array([1.0, 3.0, 5.0, 7.0]), np.full(4, 2.5)])
    stats = fit_channel_stats((SeriesPart("a", values),), ("x", "y"))
    assert stats[0].mean == pytest.approx(4.0)
    assert stats[0].std == pytest.approx(np.std([1, 3, 5, 7]))
    assert (stats[1].mean, stats[1].std) == (2.5, 1.0)


def test_validation_blocks_are_spread_out_and_disjoint() -> None:
    # 5000 steps, window 10, blocks of 100 steps, every 5th block held out.
    train, validation = validation_split((_part(5000),), window=10, fraction=0.2, block_windows=10)
    held_out = sum(p.values.shape[0] for p in validation)
    kept = sum(p.values.shape[0] for p in train)
    assert (held_out, kept) == (1000, 4000)
    assert len(validation) == 10
    first_steps = sorted(int(p.values[0, 0]) // 2 for p in validation)
    assert first_steps[:3] == [400, 900, 1400]
    steps = np.concatenate([p.values[:, 0] // 2 for p in train + validation])
    assert np.array_equal(np.sort(steps), np.arange(5000))


def test_a_short_part_holds_out_its_tail() -> None:
    train, validation = validation_split((_part(300),), window=50, fraction=0.2, block_windows=10)
    assert [p.values.shape[0] for p in train] == [240]
    assert [p.values.shape[0] for p in validation] == [60]
    train, validation = validation_split((_part(80),), window=50, fraction=0.2)
    assert [p.values.shape[0] for p in train] == [80]
    assert validation == []


def test_training_windows_skip_labelled_steps() -> None:
    labels = np.zeros(100, dtype=bool)
    labels[45] = True
    windows = training_windows([_part(100, labels=labels)], window=10, stride=10)
    # Starts 0, 10, ..., 90; the window starting at 40 holds step 45.
    starts = [int(w[0, 0]) // 2 for w in windows]
    assert starts == [0, 10, 20, 30, 50, 60, 70, 80, 90]
    with pytest.raises(ValueError, match="no training window of 200 steps"):
        training_windows([_part(100)], window=200, stride=1)


def test_gaps_are_filled_with_the_last_reading() -> None:
    values = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [5.0, 4.0]])
    filled = fill_gaps(values, "x")
    np.testing.assert_array_equal(filled, [[2.0, 1.0], [2.0, 1.0], [2.0, 1.0], [5.0, 4.0]])
    with pytest.raises(ValueError, match=r"channel\(s\) \[0\] have no valid value"):
        fill_gaps(np.array([[np.nan, 1.0]]), "x")

"""Sliding windows, standardisation and the reassembly of per-step values."""

from __future__ import annotations

import numpy as np
import pytest

from service.features.windows import (
    as_series,
    reassemble,
    sliding_windows,
    standardise,
    window_starts,
)


def test_window_starts_add_one_end_aligned_window_when_the_stride_misses_the_end() -> None:
    assert window_starts(10, 4, 2).tolist() == [0, 2, 4, 6]
    assert window_starts(11, 4, 2).tolist() == [0, 2, 4, 6, 7]
    assert window_starts(4, 4, 4).tolist() == [0]
    assert window_starts(9, 4, 4).tolist() == [0, 4, 5]


def test_window_starts_refuse_a_series_shorter_than_a_window() -> None:
    with pytest.raises(ValueError, match="3 steps, fewer than one window of 4"):
        window_starts(3, 4, 1)


def test_sliding_windows_hold_the_steps_of_each_window() -> None:
    values = np.arange(20, dtype=np.float32).reshape(10, 2)
    windows = sliding_windows(values, np.array([0, 3, 6]), 4)
    assert windows.shape == (3, 4, 2)
    np.testing.assert_array_equal(windows[1], values[3:7])
    np.testing.assert_array_equal(windows[2], values[6:10])


def test_reassemble_averages_the_windows_covering_each_step() -> None:
    # Windows of 3 at starts 0, 2, 3 over 6 steps; step 2 is covered by the first two windows.
    starts = np.array([0, 2, 3])
    per_window = np.array([[1.0, 1.0, 1.0], [4.0, 4.0, 4.0], [10.0, 10.0, 10.0]])
    steps = reassemble(per_window, starts, 6)
    np.testing.assert_allclose(steps, [1.0, 1.0, 2.5, 7.0, 7.0, 10.0])


def test_reassemble_keeps_trailing_axes_and_inverts_windowing() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(37, 3)).astype(np.float32)
    starts = window_starts(37, 10, 4)
    np.testing.assert_allclose(
        reassemble(sliding_windows(values, starts, 10), starts, 37), values, rtol=1e-6
    )


def test_reassemble_refuses_uncovered_steps() -> None:
    with pytest.raises(ValueError, match="do not cover every step"):
        reassemble(np.ones((1, 3)), np.array([0]), 5)


def test_standardise_uses_the_given_statistics() -> None:
    values = np.array([[1.0, 10.0], [3.0, 30.0]])
    out = standardise(values, [2.0, 20.0], [1.0, 10.0])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[-1.0, -1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="std must be positive"):
        standardise(values, [0.0, 0.0], [1.0, 0.0])


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        ([1.0, 2.0], "2-D array of steps x channels, got 1 dimension"),
        ([[1.0, 2.0, 3.0]], "3 channels, the model expects 2"),
        ([[1.0, 2.0], [float("nan"), 0.0]], "1 non-finite value.*step 1, channel 0"),
        ([["a", "b"]], "numbers arranged as steps x channels"),
    ],
)
def test_as_series_says_what_is_wrong(samples: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        as_series(samples, 2)  # type: ignore[arg-type]

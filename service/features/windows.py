"""Sensor series for the windows models: standardise with training statistics, cut sliding
windows, and reassemble per-step values from the overlapping windows that cover each step."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def as_series(samples: ArrayLike, n_channels: int) -> NDArray[np.float64]:
    """Check that `samples` is a finite [steps, n_channels] array of numbers and return it."""
    try:
        values = np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"samples must be numbers arranged as steps x channels: {exc}") from exc
    if values.ndim != 2:
        raise ValueError(
            f"samples must be a 2-D array of steps x channels, got {values.ndim} dimension(s)"
        )
    if values.shape[1] != n_channels:
        raise ValueError(f"samples have {values.shape[1]} channels, the model expects {n_channels}")
    bad = ~np.isfinite(values)
    if bad.any():
        step, channel = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"samples contain {int(bad.sum())} non-finite value(s), "
            f"the first at step {step}, channel {channel}"
        )
    return values


def standardise(
    values: NDArray[np.floating], mean: ArrayLike, std: ArrayLike
) -> NDArray[np.float32]:
    """(values - mean) / std per channel, as float32 (the models' input type)."""
    centre = np.asarray(mean, dtype=np.float64)
    scale = np.asarray(std, dtype=np.float64)
    if np.any(scale <= 0):
        raise ValueError("every channel's std must be positive")
    return ((np.asarray(values, dtype=np.float64) - centre) / scale).astype(np.float32)


def window_starts(n_steps: int, window: int, stride: int) -> NDArray[np.int64]:
    """Start indices of windows `stride` apart; when the stride does not land on the end, one last
    window is aligned to the end so that every step is covered."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be positive, got {window} and {stride}")
    if n_steps < window:
        raise ValueError(f"the series has {n_steps} steps, fewer than one window of {window}")
    starts = np.arange(0, n_steps - window + 1, stride, dtype=np.int64)
    if starts[-1] != n_steps - window:
        starts = np.append(starts, np.int64(n_steps - window))
    return starts


def sliding_windows(
    values: NDArray[np.float32], starts: NDArray[np.int64], window: int
) -> NDArray[np.float32]:
    """The windows of `values` [steps, channels] starting at `starts`: [N, window, channels]."""
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
    # sliding_window_view puts the window axis last: [steps - window + 1, channels, window].
    return np.ascontiguousarray(view[starts].transpose(0, 2, 1))


def reassemble(
    window_values: NDArray[np.floating], starts: NDArray[np.int64], n_steps: int
) -> NDArray[np.float64]:
    """Per-step values [n_steps, ...] from per-window values [N, window, ...]: each step gets the
    mean over the windows that cover it."""
    if window_values.shape[0] != starts.shape[0]:
        raise ValueError(
            f"{window_values.shape[0]} windows of values but {starts.shape[0]} window starts"
        )
    window = window_values.shape[1]
    total = np.zeros((n_steps, *window_values.shape[2:]), dtype=np.float64)
    count = np.zeros(n_steps, dtype=np.int64)
    # Starts are distinct, so for a fixed offset the target steps are distinct too.
    for offset in range(window):
        total[starts + offset] += window_values[:, offset]
        count[starts + offset] += 1
    if np.any(count == 0):
        raise ValueError("the windows do not cover every step of the series")
    return total / count.reshape(-1, *([1] * (total.ndim - 1)))

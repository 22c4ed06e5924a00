"""From loaded parts to model inputs: channel statistics fitted on training data only, a blocked
train/validation split of the training data, and training windows."""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray

from service.bundle.manifest import ChannelStats
from service.features.windows import sliding_windows, standardise, window_starts
from training.windows.series import SeriesPart

# A channel that never moves in training gets scale 1 (as scikit-learn's StandardScaler does):
# dividing by ~0 would turn any later change into an enormous error.
_MIN_STD = 1e-8


def fit_channel_stats(parts: tuple[SeriesPart, ...], names: tuple[str, ...]) -> list[ChannelStats]:
    values = np.concatenate([part.values for part in parts])
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    return [
        ChannelStats(name=name, mean=float(m), std=float(s) if s > _MIN_STD else 1.0)
        for name, m, s in zip(names, mean, std, strict=True)
    ]


def standardise_part(part: SeriesPart, stats: list[ChannelStats]) -> SeriesPart:
    values = standardise(part.values, [c.mean for c in stats], [c.std for c in stats])
    return SeriesPart(part.name, values.astype(np.float64), part.labels)


def validation_split(
    parts: tuple[SeriesPart, ...], window: int, fraction: float = 0.2, block_windows: int = 10
) -> tuple[list[SeriesPart], list[SeriesPart]]:
    """Split each part into blocks of `block_windows` windows and hold out every
    round(1/fraction)-th block for validation. Blocks rather than random windows, because
    overlapping windows would leak; spread over the series rather than its tail, because a tail
    (in MSL: the last telemetry channels) would not look like the rest."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the validation fraction must lie in (0, 1), got {fraction}")
    every = max(2, round(1.0 / fraction))
    block = block_windows * window
    split: dict[bool, list[SeriesPart]] = {False: [], True: []}
    for part in parts:
        n_steps = part.values.shape[0]
        n_blocks = n_steps // block
        if n_blocks >= every:
            bounds = [i * block for i in range(n_blocks)] + [n_steps]
            pieces = [
                (start, end, i % every == every - 1)
                for i, (start, end) in enumerate(itertools.pairwise(bounds))
            ]
        else:
            # Too short to interleave: hold out the tail when both sides still fit a window.
            cut = n_steps - max(window, round(n_steps * fraction))
            pieces = [(0, cut, False), (cut, n_steps, True)] if cut >= window else []
            pieces = pieces or [(0, n_steps, False)]
        for start, end, held_out in _merge_runs(pieces):
            labels = None if part.labels is None else part.labels[start:end]
            name = f"{part.name} [{start}:{end}]"
            split[held_out].append(SeriesPart(name, part.values[start:end], labels))
    if not split[False]:
        raise ValueError(f"no training part holds a window of {window} steps")
    return split[False], split[True]


def _merge_runs(pieces: list[tuple[int, int, bool]]) -> list[tuple[int, int, bool]]:
    """Join consecutive pieces on the same side of the split."""
    merged: list[tuple[int, int, bool]] = []
    for start, end, held_out in pieces:
        if merged and merged[-1][2] == held_out:
            merged[-1] = (merged[-1][0], end, held_out)
        else:
            merged.append((start, end, held_out))
    return merged


def training_windows(parts: list[SeriesPart], window: int, stride: int) -> NDArray[np.float32]:
    """Windows `stride` apart from every part long enough; a window touching a step labelled
    anomalous (users' CSV data may label some) is left out."""
    batches = []
    for part in parts:
        if part.values.shape[0] < window:
            continue
        starts = window_starts(part.values.shape[0], window, stride)
        if part.labels is not None and part.labels.any():
            anomalous = np.concatenate([[0], np.cumsum(part.labels)])
            starts = starts[anomalous[starts + window] - anomalous[starts] == 0]
        batches.append(sliding_windows(part.values.astype(np.float32), starts, window))
    if not batches or sum(batch.shape[0] for batch in batches) == 0:
        raise ValueError(f"no training window of {window} steps could be cut")
    return np.concatenate(batches)

"""Score sensor series with a windows bundle: samples x channels -> per-step scores and per-step
channel errors, whole (`WindowsScorer`) or as they arrive (`WindowsStreamScorer`); and the
channels that contribute most to a run of anomalous steps. Scores only: a `Decision` turns them
into verdicts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from service.bundle.loader import LoadedBundle
from service.bundle.manifest import WindowsManifest
from service.features.windows import (
    as_series,
    reassemble,
    sliding_windows,
    standardise,
    window_starts,
)

DEFAULT_MAX_BATCH = 256


class SeriesTooShortError(ValueError):
    """Fewer steps than one window: nothing can be scored."""


@dataclass(frozen=True)
class StepScores:
    """Scores of consecutive steps, the first being step `first_step` of the series or stream."""

    first_step: int
    scores: NDArray[np.float64]  # [steps]
    channel_error: NDArray[np.float64]  # [steps, channels]

    @property
    def n_steps(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True)
class ChannelShare:
    name: str
    share: float  # of the run's total channel error


@dataclass(frozen=True)
class AnomalyRun:
    """Consecutive anomalous steps [start, end) and the channels that contribute most."""

    start: int
    end: int
    peak_step: int
    peak_score: float
    channels: tuple[ChannelShare, ...]


class WindowsScorer:
    """Runs a windows bundle's model: it gives scores, never verdicts."""

    def __init__(self, bundle: LoadedBundle, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if not isinstance(bundle.manifest, WindowsManifest):
            raise TypeError(
                f"bundle {bundle.manifest.name!r} at {bundle.path} is a "
                f"{bundle.manifest.kind} bundle; WindowsScorer needs a windows bundle"
            )
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.bundle = bundle
        self.manifest: WindowsManifest = bundle.manifest
        self.channel_names = tuple(c.name for c in self.manifest.channels)
        self._mean = np.array([c.mean for c in self.manifest.channels])
        self._std = np.array([c.std for c in self.manifest.channels])
        self.max_batch = max_batch

    def standardise(self, samples: ArrayLike) -> NDArray[np.float32]:
        """Checked raw readings [steps, channels] -> standardised model input."""
        values = as_series(samples, len(self.channel_names))
        return standardise(values, self._mean, self._std)

    def score_windows(
        self, windows: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Scores [N, window] and channel errors [N, window, channels] of standardised windows."""
        window, n_channels = self.manifest.window, len(self.channel_names)
        if windows.ndim != 3 or windows.shape[1:] != (window, n_channels):
            raise ValueError(
                f"windows must have shape (n, {window}, {n_channels}), got {windows.shape}"
            )
        scores = np.empty(windows.shape[:2], dtype=np.float32)
        errors = np.empty(windows.shape, dtype=np.float32)
        for start in range(0, windows.shape[0], self.max_batch):
            stop = start + self.max_batch
            outputs = self.bundle.run({"windows": windows[start:stop]})
            scores[start:stop] = outputs["score"]
            errors[start:stop] = outputs["channel_error"]
        return scores, errors

    def score(self, samples: ArrayLike) -> StepScores:
        """Per-step scores of a whole series: windows `stride` apart (the last one aligned to
        the end), each step the mean over the windows that cover it."""
        return self.score_standardised(self.standardise(samples))

    def score_standardised(self, values: NDArray[np.float32]) -> StepScores:
        """`score` of a series `standardise` has already checked and standardised."""
        n_steps, window = values.shape[0], self.manifest.window
        if n_steps < window:
            raise SeriesTooShortError(
                f"the series has {n_steps} steps; the model needs at least one window of {window}"
            )
        starts = window_starts(n_steps, window, self.manifest.stride)
        scores, errors = self.score_windows(sliding_windows(values, starts, window))
        return StepScores(
            first_step=0,
            scores=reassemble(scores, starts, n_steps),
            channel_error=reassemble(errors, starts, n_steps),
        )


class WindowsStreamScorer:
    """Scores a series pushed piece by piece, with the scores `WindowsScorer.score` gives the
    whole series. Windows start every `stride` steps from the stream's first step; `finish` adds
    the batch scorer's end-aligned window. A step's score is final, and returned, once no later
    window can cover it: neither a later stride window nor the end-aligned one, which starts at
    least `window` steps before the end."""

    def __init__(self, scorer: WindowsScorer) -> None:
        self.scorer = scorer
        n_channels = len(scorer.channel_names)
        self._buffer = np.empty((0, n_channels), dtype=np.float32)
        self._buffer_start = 0  # stream step of the buffer's first row
        self._next_start = 0  # stream step where the next stride window starts
        self._pending_start = 0  # first step not returned yet
        self._sums = np.empty(0)
        self._error_sums = np.empty((0, n_channels))
        self._counts = np.empty(0, dtype=np.int64)

    @property
    def steps_received(self) -> int:
        return self._buffer_start + self._buffer.shape[0]

    def push(self, samples: ArrayLike) -> StepScores:
        """Add raw readings [steps, channels]; return the steps whose scores became final."""
        return self.push_standardised(self.scorer.standardise(samples))

    def push_standardised(self, values: NDArray[np.float32]) -> StepScores:
        """`push` of readings `WindowsScorer.standardise` has already checked and standardised."""
        self._buffer = np.concatenate([self._buffer, values])
        manifest = self.scorer.manifest
        window, stride = manifest.window, manifest.stride
        last_start = self.steps_received - window
        if last_start >= self._next_start:
            starts = np.arange(self._next_start, last_start + 1, stride, dtype=np.int64)
            self._score(starts)
            self._next_start = int(starts[-1]) + stride
        # No later stride window starts before _next_start, and the end-aligned window starts
        # at steps_received - window or later.
        ready = self._take(min(self._next_start, self.steps_received - window))
        # Keep what later windows, the end-aligned one included, may still need.
        keep_from = min(self._next_start, max(self.steps_received - window, 0))
        self._buffer = self._buffer[keep_from - self._buffer_start :]
        self._buffer_start = keep_from
        return ready

    def finish(self) -> StepScores:
        """The end of the stream: every step not returned yet, the last ones with the batch
        scorer's end-aligned window. A stream shorter than one window has no scores."""
        window = self.scorer.manifest.window
        end_start = self.steps_received - window
        last_stride_start = self._next_start - self.scorer.manifest.stride
        if end_start >= 0 and end_start != last_stride_start:
            self._score(np.array([end_start], dtype=np.int64))
        return self._take(self.steps_received if end_start >= 0 else self._pending_start)

    def _score(self, starts: NDArray[np.int64]) -> None:
        window = self.scorer.manifest.window
        local = starts - self._buffer_start
        scores, errors = self.scorer.score_windows(sliding_windows(self._buffer, local, window))
        self._accumulate(starts, scores, errors)

    def _accumulate(
        self, starts: NDArray[np.int64], scores: NDArray[np.float32], errors: NDArray[np.float32]
    ) -> None:
        window = scores.shape[1]
        needed = int(starts[-1]) + window - self._pending_start
        grow = needed - self._sums.shape[0]
        if grow > 0:
            self._sums = np.concatenate([self._sums, np.zeros(grow)])
            self._error_sums = np.concatenate(
                [self._error_sums, np.zeros((grow, self._error_sums.shape[1]))]
            )
            self._counts = np.concatenate([self._counts, np.zeros(grow, dtype=np.int64)])
        local = starts - self._pending_start
        for offset in range(window):
            self._sums[local + offset] += scores[:, offset]
            self._error_sums[local + offset] += errors[:, offset]
            self._counts[local + offset] += 1

    def _take(self, until: int) -> StepScores:
        """Return steps [pending_start, until) and forget them."""
        n = max(0, until - self._pending_start)
        counts = self._counts[:n]
        result = StepScores(
            first_step=self._pending_start,
            scores=self._sums[:n] / counts,
            channel_error=self._error_sums[:n] / counts[:, None],
        )
        self._sums, self._error_sums, self._counts = (
            self._sums[n:],
            self._error_sums[n:],
            self._counts[n:],
        )
        self._pending_start += n
        return result


def top_channels(
    channel_error: NDArray[np.floating], names: tuple[str, ...], count: int
) -> tuple[ChannelShare, ...]:
    """The `count` channels with the largest share of the summed error over the given steps."""
    totals = np.asarray(channel_error, dtype=np.float64).reshape(-1, len(names)).sum(axis=0)
    grand = float(totals.sum())
    order = np.argsort(-totals, kind="stable")[:count]
    return tuple(
        ChannelShare(name=names[i], share=float(totals[i] / grand) if grand > 0 else 0.0)
        for i in order
    )


def anomaly_runs(
    steps: StepScores, anomalous: NDArray[np.bool_], names: tuple[str, ...], count: int = 3
) -> list[AnomalyRun]:
    """Each run of consecutive anomalous steps (as `Decision.anomalies` flagged them), in stream
    or series step numbers, with its peak and its `count` most contributing channels."""
    flags = np.asarray(anomalous, dtype=bool)
    if flags.shape != steps.scores.shape:
        raise ValueError(f"{flags.shape[0]} flags for {steps.n_steps} steps")
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    runs = []
    for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        peak = int(start + np.argmax(steps.scores[start:end]))
        runs.append(
            AnomalyRun(
                start=steps.first_step + int(start),
                end=steps.first_step + int(end),
                peak_step=steps.first_step + peak,
                peak_score=float(steps.scores[peak]),
                channels=top_channels(steps.channel_error[start:end], names, count),
            )
        )
    return runs

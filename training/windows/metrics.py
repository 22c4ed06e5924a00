"""Detection metrics for per-step scores against per-step labels.

- Point-wise precision, recall and F1: every step counts once.
- Point-adjusted precision, recall and F1 (the Anomaly Transformer protocol, reported only to set
  our numbers beside published tables): if any step of a labelled segment is flagged, the whole
  segment counts as flagged. Kim et al. (AAAI 2022) show this lets random scores look excellent.
- AUC-PR: average precision of the scores, threshold-free.
- VUS-PR (Paparrizos et al., "Volume Under the Surface", VLDB 2022), range-aware and
  threshold-free, as defined by the authors' TSB-AD code (`RangeAUC_volume_opt`, Liu and
  Paparrizos, NeurIPS 2024 Datasets and Benchmarks): for every buffer length l in 0..2*w each
  labelled segment is widened by l//2 steps on each side with weights sqrt(1 - d/l) at distance d;
  at 250 score thresholds (evenly spaced ranks) a range recall is computed with TP = flagged
  segment steps + flagged buffer weight, normalised by P + buffer/2, capped at 1 and multiplied by
  the share of (widened) segments touched; precision is TP over flagged steps; the PR area for
  each l is averaged over l.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import average_precision_score


def _labels(labels: ArrayLike) -> NDArray[np.bool_]:
    values = np.asarray(labels)
    if values.ndim != 1:
        raise ValueError("labels must be one per step")
    return values.astype(bool)


def _check(scores: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    values = np.asarray(scores, dtype=np.float64)
    truth = _labels(labels)
    if values.shape != truth.shape:
        raise ValueError(f"{values.shape[0]} scores for {truth.shape[0]} labels")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores must be finite")
    return values, truth


def anomaly_segments(labels: ArrayLike) -> NDArray[np.int64]:
    """[start, end) of every run of anomalous steps, as an [n, 2] array."""
    truth = _labels(labels).astype(np.int8)
    edges = np.diff(np.concatenate([[0], truth, [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def point_adjust(predictions: ArrayLike, labels: ArrayLike) -> NDArray[np.bool_]:
    """Flag every step of each labelled segment in which at least one step is flagged."""
    flagged = _labels(predictions).copy()
    truth = _labels(labels)
    if flagged.shape != truth.shape:
        raise ValueError(f"{flagged.shape[0]} predictions for {truth.shape[0]} labels")
    for start, end in anomaly_segments(truth):
        if flagged[start:end].any():
            flagged[start:end] = True
    return flagged


def precision_recall_f1(predictions: ArrayLike, labels: ArrayLike) -> tuple[float, float, float]:
    """Point-wise precision, recall and F1; 0 where undefined (nothing flagged or labelled)."""
    flagged = _labels(predictions)
    truth = _labels(labels)
    if flagged.shape != truth.shape:
        raise ValueError(f"{flagged.shape[0]} predictions for {truth.shape[0]} labels")
    true_positives = float(np.sum(flagged & truth))
    precision = true_positives / flagged.sum() if flagged.any() else 0.0
    recall = true_positives / truth.sum() if truth.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return float(precision), float(recall), float(f1)


def auc_pr(scores: ArrayLike, labels: ArrayLike) -> float:
    values, truth = _check(scores, labels)
    if not truth.any():
        raise ValueError("AUC-PR needs at least one anomalous step")
    return float(average_precision_score(truth, values))


def _widened_segments(segments: NDArray[np.int64], half: int, n: int) -> list[tuple[int, int]]:
    """Inclusive [start, end] of the segments widened by `half`, merged where they touch."""
    merged: list[tuple[int, int]] = []
    for start, end in segments:
        lo, hi = max(int(start) - half, 0), min(int(end) - 1 + half, n - 1)
        if merged and merged[-1][1] >= lo:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _buffer_weights(
    segments: NDArray[np.int64], truth: NDArray[np.bool_], length: int
) -> NDArray[np.float64]:
    """Each non-anomalous step's weight for buffer length `length`: sqrt(1 - d / length) at
    distance d <= length // 2 from a segment, summed over segments and capped at 1."""
    n = truth.shape[0]
    weights = np.zeros(n)
    half = length // 2
    if half == 0:
        return weights
    for start, end in segments:
        last = int(end) - 1
        after = np.arange(last + 1, min(last + half + 1, n))
        weights[after] += np.sqrt(1 - (after - last) / length)
        before = np.arange(max(int(start) - half, 0), int(start))
        weights[before] += np.sqrt(1 - (int(start) - before) / length)
    weights = np.minimum(weights, 1.0)
    weights[truth] = 0.0
    return weights


def vus_pr(
    scores: ArrayLike, labels: ArrayLike, sliding_window: int = 100, n_thresholds: int = 250
) -> float:
    """VUS-PR over buffer lengths 0..2*sliding_window (see the module docstring)."""
    values, truth = _check(scores, labels)
    if not truth.any():
        raise ValueError("VUS-PR needs at least one anomalous step")
    if sliding_window < 0 or n_thresholds < 1:
        raise ValueError("sliding_window must be >= 0 and n_thresholds >= 1")
    n = values.shape[0]
    positives = float(truth.sum())
    segments = anomaly_segments(truth)
    ranks = np.linspace(0, n - 1, n_thresholds).astype(int)
    thresholds = -np.sort(-values)[ranks]

    def at_or_above(sorted_values: NDArray[np.float64]) -> NDArray[np.int64]:
        """How many of `sorted_values` (ascending) reach each threshold."""
        count = sorted_values.shape[0] - np.searchsorted(sorted_values, thresholds, side="left")
        return np.asarray(count, dtype=np.int64)

    flagged = at_or_above(np.sort(values))
    flagged_anomalous = at_or_above(np.sort(values[truth]))
    areas = []
    for length in range(2 * sliding_window + 1):
        weights = _buffer_weights(segments, truth, length)
        in_buffer = np.flatnonzero(weights)
        order = np.argsort(values[in_buffer])
        buffer_scores = values[in_buffer][order]
        # Flagged buffer weight at each threshold: the weights of the buffer steps scoring at or
        # above it, i.e. a suffix sum in ascending score order.
        suffix = np.concatenate([np.cumsum(weights[in_buffer][order][::-1])[::-1], [0.0]])
        buffer_flagged = suffix[buffer_scores.shape[0] - at_or_above(buffer_scores)]
        widened = _widened_segments(segments, length // 2, n)
        peaks = np.sort([values[lo : hi + 1].max() for lo, hi in widened])
        existence = at_or_above(peaks) / len(widened)
        true_positive = flagged_anomalous + buffer_flagged
        recall = np.minimum(true_positive / (positives + buffer_flagged / 2), 1.0) * existence
        precision = true_positive / flagged
        areas.append(float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision)))
    return float(np.mean(areas))


def thresholded_metrics(scores: ArrayLike, labels: ArrayLike, threshold: float) -> dict[str, float]:
    """Point-wise and point-adjusted precision, recall and F1, and the share of steps flagged;
    a step is flagged when its score exceeds `threshold`."""
    values, truth = _check(scores, labels)
    flagged = values > threshold
    precision, recall, f1 = precision_recall_f1(flagged, truth)
    precision_pa, recall_pa, f1_pa = precision_recall_f1(point_adjust(flagged, truth), truth)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "precision_pa": precision_pa,
        "recall_pa": recall_pa,
        "f1_pa": f1_pa,
        "flagged_share": float(flagged.mean()),
    }


def ranking_metrics(scores: ArrayLike, labels: ArrayLike, sliding_window: int) -> dict[str, float]:
    """The threshold-free metrics: AUC-PR and VUS-PR."""
    return {
        "auc_pr": auc_pr(scores, labels),
        "vus_pr": vus_pr(scores, labels, sliding_window),
    }


def detection_metrics(
    scores: ArrayLike, labels: ArrayLike, threshold: float, sliding_window: int
) -> dict[str, float]:
    """Every metric the project reports."""
    return {
        **thresholded_metrics(scores, labels, threshold),
        **ranking_metrics(scores, labels, sliding_window),
    }


def interpretation_hit_rate(
    channel_error: ArrayLike, events: list[tuple[int, int, tuple[int, ...]]], percent: float
) -> float:
    """HitRate@P% (Su et al., OmniAnomaly, KDD 2019), per labelled event rather than per step:
    rank the channels by their summed error over the event [start, end] (inclusive), take the
    top floor(P% x |G|) and count how many of the labelled channels G they hold, / |G|; the
    mean over events."""
    errors = np.asarray(channel_error, dtype=np.float64)
    rates = []
    for start, end, labelled in events:
        if not labelled:
            continue
        totals = errors[start : end + 1].sum(axis=0)
        top = np.argsort(-totals, kind="stable")[: int(percent / 100.0 * len(labelled))]
        rates.append(len(set(top.tolist()) & set(labelled)) / len(labelled))
    if not rates:
        raise ValueError("no labelled event names its channels")
    return float(np.mean(rates))

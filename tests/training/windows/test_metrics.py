"""Each metric against cases computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.windows.metrics import (
    anomaly_segments,
    auc_pr,
    detection_metrics,
    interpretation_hit_rate,
    point_adjust,
    precision_recall_f1,
    vus_pr,
)

LABELS = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0], dtype=bool)


def test_segments_are_half_open_runs() -> None:
    assert anomaly_segments(LABELS).tolist() == [[1, 4], [6, 8]]
    assert anomaly_segments([1, 1, 0, 1]).tolist() == [[0, 2], [3, 4]]
    assert anomaly_segments([0, 0]).shape == (0, 2)


def test_point_wise_precision_recall_f1() -> None:
    flagged = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 1], dtype=bool)
    # TP = 1 (step 1), flagged 3, labelled 5: P = 1/3, R = 1/5, F1 = 2PR/(P+R) = 0.25.
    precision, recall, f1 = precision_recall_f1(flagged, LABELS)
    assert (precision, recall) == (pytest.approx(1 / 3), pytest.approx(0.2))
    assert f1 == pytest.approx(0.25)
    assert precision_recall_f1(np.zeros(10, bool), LABELS) == (0.0, 0.0, 0.0)


def test_point_adjustment_fills_each_touched_segment() -> None:
    flagged = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 1], dtype=bool)
    adjusted = point_adjust(flagged, LABELS)
    # Segment [1, 4) was touched at step 1: all of it counts; [6, 8) was not touched.
    assert adjusted.astype(int).tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0, 1]
    # TP = 3 of 5 flagged, 3 of 5 labelled: P = R = F1 = 0.6.
    assert precision_recall_f1(adjusted, LABELS) == pytest.approx((0.6, 0.6, 0.6))


def test_point_adjustment_rewards_one_lucky_step_in_a_long_segment() -> None:
    labels = np.zeros(1000, dtype=bool)
    labels[100:400] = True
    flagged = np.zeros(1000, dtype=bool)
    flagged[[250, 700]] = True  # one step inside the 300-step segment, one false alarm
    assert precision_recall_f1(flagged, labels)[2] == pytest.approx(
        2 * 0.5 * (1 / 300) / (0.5 + 1 / 300)
    )
    # Adjusted: TP 300, flagged 301, labelled 300 -> F1 = 2 * (300/301) / (300/301 + 1).
    assert precision_recall_f1(point_adjust(flagged, labels), labels)[2] == pytest.approx(
        2 * (300 / 301) / (300 / 301 + 1)
    )


def test_auc_pr_is_average_precision() -> None:
    labels = np.array([0, 0, 1, 1, 0, 0])
    scores = np.array([0.1, 0.2, 0.9, 0.3, 0.8, 0.0])
    # Ranked: 0.9 (hit: P 1, R 1/2), 0.8 (miss), 0.3 (hit: P 2/3, R 1): AP = 1/2*1 + 1/2*2/3.
    assert auc_pr(scores, labels) == pytest.approx(0.5 + 1 / 3)


def test_vus_pr_without_buffer_is_the_range_pr_area() -> None:
    labels = np.array([0, 0, 1, 1, 0, 0])
    scores = np.array([0.1, 0.2, 0.9, 0.3, 0.8, 0.0])
    # sliding_window 0: only buffer length 0; 6 thresholds = every score. One segment, so the
    # existence factor is 1 once any of its steps is flagged: the same area as AP here.
    assert vus_pr(scores, labels, sliding_window=0, n_thresholds=6) == pytest.approx(5 / 6)


def test_vus_pr_with_buffers_by_hand() -> None:
    labels = np.array([0, 0, 1, 1, 0, 0])
    scores = np.array([0.1, 0.2, 0.9, 0.3, 0.8, 0.0])
    # sliding_window 1: buffer lengths 0, 1, 2. Lengths 0 and 1 widen nothing (1 // 2 = 0): 5/6.
    # Length 2 widens by 1 step each side, weight sqrt(1 - 1/2) = w at steps 1 and 4.
    w = math.sqrt(0.5)
    # >= 0.9: TP 1, recall 1/2, precision 1            -> area 1/2 * 1
    # >= 0.8: TP 1 + w, P' = 2 + w/2, precision (1+w)/2 -> area (R - 1/2) * (1+w)/2
    # >= 0.3: TP 2 + w, recall capped at 1, precision (2+w)/3 -> area (1 - R) * (2+w)/3
    recall_2 = (1 + w) / (2 + w / 2)
    area_2 = 0.5 + (recall_2 - 0.5) * (1 + w) / 2 + (1 - recall_2) * (2 + w) / 3
    expected = (5 / 6 + 5 / 6 + area_2) / 3
    assert vus_pr(scores, labels, sliding_window=1, n_thresholds=6) == pytest.approx(expected)


def test_vus_pr_existence_counts_touched_segments() -> None:
    labels = np.array([1, 0, 0, 0, 0, 0, 1, 1])
    scores = np.array([0.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9, 0.8])
    # Without buffers, thresholds 0.9 then 0.8 flag only the second segment: recall x existence
    # = 1/3 * 1/2, then 2/3 * 1/2, precision 1; at 0.1 the first segment is still untouched;
    # at 0.0 everything is flagged: recall 1, existence 1, precision 3/8.
    # Area = 1/6 * 1 + 1/6 * 1 + (1 - 1/3) * 3/8 = 1/3 + 1/4.
    assert vus_pr(scores, labels, sliding_window=0, n_thresholds=8) == pytest.approx(1 / 3 + 1 / 4)


def test_random_scores_score_high_only_with_point_adjustment() -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros(20_000, dtype=bool)
    for start in range(500, 20_000, 2000):
        labels[start : start + 200] = True
    metrics = detection_metrics(rng.random(20_000), labels, threshold=0.99, sliding_window=100)
    assert metrics["f1_pa"] > 0.8
    assert metrics["f1"] < 0.05
    assert metrics["auc_pr"] == pytest.approx(labels.mean(), abs=0.01)
    assert metrics["vus_pr"] < 0.25


def test_metrics_refuse_mismatched_or_empty_labels() -> None:
    with pytest.raises(ValueError, match="3 scores for 2 labels"):
        auc_pr([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="at least one anomalous step"):
        vus_pr([0.1, 0.2], [0, 0])


def test_interpretation_hit_rate_by_hand() -> None:
    errors = np.zeros((10, 4))
    errors[2:5] = [1.0, 5.0, 0.5, 3.0]  # event A ranks channels 1, 3, 0, 2
    errors[7:9] = [4.0, 0.0, 2.0, 1.0]  # event B ranks channels 0, 2, 3, 1
    events = [(2, 4, (1, 2)), (7, 8, (0,))]
    # @100%: A takes its top 2 = {1, 3}: 1 of 2 hits; B takes its top 1 = {0}: 1 of 1.
    assert interpretation_hit_rate(errors, events, 100.0) == pytest.approx((0.5 + 1.0) / 2)
    # @150%: A takes its top 3 = {1, 3, 0}: still 1 of 2; B its top 1.
    assert interpretation_hit_rate(errors, events, 150.0) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="no labelled event"):
        interpretation_hit_rate(errors, [(0, 1, ())], 100.0)

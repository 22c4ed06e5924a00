"""evaluate_scores on scores with known answers: the AUC's direction (anomalies score higher),
pAUC as DCASE's McClish-standardised partial AUC up to FPR 0.1 (not the full AUC), and the
denominators of the false-alarm rate (normal clips), precision (flagged clips) and recall
(anomalous clips)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.audio.datasets import Recording
from training.audio.evaluation import ScoredClip, evaluate_scores


def _clips(normal: list[float], anomalous: list[float], group: str = "broken") -> list[ScoredClip]:
    clips = []
    for i, score in enumerate(normal):
        recording = Recording(Path(f"normal/{i}.wav"), f"normal/{i}", "normal", "normal")
        clips.append(ScoredClip(recording, 0, score))
    for i, score in enumerate(anomalous):
        recording = Recording(Path(f"{group}/{i}.wav"), f"{group}/{i}", "anomaly", group)
        clips.append(ScoredClip(recording, 0, score))
    return clips


def test_auc_counts_anomalies_scoring_above_normal_clips() -> None:
    # 11 of the 12 (anomalous, normal) pairs have the anomalous clip higher: 0.35 < 0.4.
    report = evaluate_scores(_clips([0.1, 0.2, 0.3, 0.4], [0.35, 0.5, 0.6]), "folders", 1.0)
    assert report.auc == pytest.approx(11 / 12)
    assert report.pooled_auc == pytest.approx(11 / 12)
    assert report.groups[0].auc == pytest.approx(11 / 12)


def test_pauc_is_the_standardised_partial_auc_up_to_fpr_one_tenth() -> None:
    rng = np.random.default_rng(4)
    normal = rng.gamma(4.0, 1.0, 40).tolist()
    anomalous = (rng.gamma(4.0, 1.0, 20) + 1.5).tolist()
    report = evaluate_scores(_clips(normal, anomalous), "folders", 100.0)
    y = np.r_[np.zeros(40), np.ones(20)]
    s = np.r_[normal, anomalous]
    expected_pauc = roc_auc_score(y, s, max_fpr=0.1)
    assert report.auc == pytest.approx(roc_auc_score(y, s))
    assert report.pauc == pytest.approx(expected_pauc)
    # The data are chosen so that the two differ: a full AUC in place of pAUC shows.
    assert abs(expected_pauc - report.auc) > 0.05


def test_threshold_verdicts_use_the_right_denominators() -> None:
    # 4 normal clips (1 above the threshold), 6 anomalous (3 above): false alarms are counted
    # against the normal clips, precision against the flagged ones, recall against the anomalous.
    report = evaluate_scores(
        _clips([0.1, 0.2, 0.3, 0.9], [0.2, 0.3, 0.4, 0.6, 0.7, 0.8]), "folders", 0.5
    )
    assert report.false_alarm_rate == pytest.approx(1 / 4)
    assert report.precision == pytest.approx(3 / 4)
    assert report.recall == pytest.approx(3 / 6)
    assert report.f1 == pytest.approx(2 * 0.75 * 0.5 / 1.25)
    assert (report.n_normal, report.n_anomaly) == (4, 6)


def test_a_score_equal_to_the_threshold_is_not_flagged() -> None:
    report = evaluate_scores(_clips([0.5, 0.1], [0.5, 0.6]), "folders", 0.5)
    assert report.false_alarm_rate == 0.0
    assert report.recall == pytest.approx(1 / 2)

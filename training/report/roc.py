"""The ROC curve of normal against anomalous scores, with its AUC and DCASE's partial AUC."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import roc_auc_score, roc_curve

from training.audio.evaluation import PAUC_MAX_FPR


@dataclass(frozen=True)
class RocCurve:
    false_positive_rate: NDArray[np.float64]
    true_positive_rate: NDArray[np.float64]
    auc: float
    # McClish-standardised AUC up to max_fpr (sklearn's roc_auc_score(max_fpr=...)).
    pauc: float
    max_fpr: float


def roc_of(scores: ArrayLike, anomalous: ArrayLike) -> RocCurve | None:
    """The ROC of `scores` where `anomalous` marks the positives; None unless both classes occur."""
    values = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(anomalous, dtype=bool)
    if labels.all() or not labels.any():
        return None
    fpr, tpr, _ = roc_curve(labels, values)
    return RocCurve(
        false_positive_rate=np.asarray(fpr, dtype=np.float64),
        true_positive_rate=np.asarray(tpr, dtype=np.float64),
        auc=float(roc_auc_score(labels, values)),
        pauc=float(roc_auc_score(labels, values, max_fpr=PAUC_MAX_FPR)),
        max_fpr=PAUC_MAX_FPR,
    )

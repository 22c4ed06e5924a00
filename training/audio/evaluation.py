"""Score held-out clips through an exported bundle and report ROC-AUC and pAUC (per machine ID and
averaged, the DCASE convention; or per anomaly class and overall) and the clip threshold's
precision, recall, F1 and false-alarm rate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from service.bundle.loader import LoadedBundle
from service.bundle.manifest import AudioManifest, Evaluation
from service.features.logmel import AudioTooShortError
from service.scoring.audio import AudioScorer
from service.scoring.decision import Decision
from training.audio.clips import iter_clips
from training.audio.datasets import DatasetError, Layout, Recording

# DCASE's partial AUC: the ROC curve up to this false-positive rate, McClish-standardised.
PAUC_MAX_FPR = 0.1


@dataclass(frozen=True)
class ScoredClip:
    recording: Recording
    clip_index: int
    score: float


def score_recordings(
    bundle: LoadedBundle, recordings: Sequence[Recording], clip_seconds: float | None
) -> list[ScoredClip]:
    """Cut each recording into clips and score every clip through the bundle, as served."""
    manifest = bundle.manifest
    if not isinstance(manifest, AudioManifest):
        raise ValueError(f"bundle {bundle.path} is a {manifest.kind} bundle, not an audio one")
    scorer = AudioScorer(bundle)
    scored = []
    for clip in iter_clips(recordings, manifest.features.sample_rate, clip_seconds):
        try:
            result = scorer.score_samples(clip.samples)
        except AudioTooShortError as exc:
            raise DatasetError(f"clip {clip.clip_id} of {clip.recording.path}: {exc}") from exc
        scored.append(ScoredClip(clip.recording, clip.index, float(result.clip_score)))
    return scored


@dataclass(frozen=True)
class GroupResult:
    """ROC figures of one machine ID (DCASE) or one anomaly class against the normal clips."""

    name: str
    n_normal: int
    n_anomaly: int
    auc: float
    pauc: float


@dataclass(frozen=True)
class EvaluationReport:
    n_normal: int
    n_anomaly: int
    n_recordings: int
    # The headline figures: the mean over machine IDs (DCASE) or all anomalies against all normal
    # clips (folder layouts); None where one class is missing.
    auc: float | None
    pauc: float | None
    averaging: str
    groups: tuple[GroupResult, ...]
    threshold: float
    precision: float | None
    recall: float | None
    f1: float | None
    false_alarm_rate: float | None
    pooled_auc: float | None

    def as_manifest(self, data: str) -> Evaluation:
        extra = {}
        for group in self.groups:
            extra[f"auc[{group.name}]"] = group.auc
            extra[f"pauc[{group.name}]"] = group.pauc
        if self.pooled_auc is not None and self.averaging != "pooled":
            extra["auc_pooled"] = self.pooled_auc
        return Evaluation(
            data=data,
            n_normal=self.n_normal,
            n_anomaly=self.n_anomaly,
            auc=self.auc,
            pauc=self.pauc,
            precision=self.precision,
            recall=self.recall,
            f1=self.f1,
            false_alarm_rate=self.false_alarm_rate,
            extra=extra,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "auc": self.auc,
            "pauc": self.pauc,
            "averaging": self.averaging,
            "n_normal": self.n_normal,
            "n_anomaly": self.n_anomaly,
            "n_recordings": self.n_recordings,
            "threshold": self.threshold,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "false_alarm_rate": self.false_alarm_rate,
            "auc_pooled": self.pooled_auc,
            "groups": {
                g.name: {
                    "auc": g.auc,
                    "pauc": g.pauc,
                    "n_normal": g.n_normal,
                    "n_anomaly": g.n_anomaly,
                }
                for g in self.groups
            },
        }


def _roc(normal: np.ndarray, anomalous: np.ndarray) -> tuple[float, float]:
    y = np.r_[np.zeros(normal.size), np.ones(anomalous.size)]
    s = np.r_[normal, anomalous]
    return float(roc_auc_score(y, s)), float(roc_auc_score(y, s, max_fpr=PAUC_MAX_FPR))


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def evaluate_scores(
    scored: Sequence[ScoredClip], layout: Layout, threshold: float
) -> EvaluationReport:
    """ROC figures per group and overall, and the verdicts of the service's Decision at
    `threshold`."""
    if not scored:
        raise ValueError("no clips to evaluate")
    scores = np.array([c.score for c in scored])
    anomalous = np.array([c.recording.is_anomaly for c in scored])
    groups_of = np.array([c.recording.group for c in scored])
    has_both = anomalous.any() and (~anomalous).any()

    groups: list[GroupResult] = []
    if has_both:
        if layout == "dcase":
            for name in sorted(set(groups_of)):
                members = groups_of == name
                normal, anomaly = scores[members & ~anomalous], scores[members & anomalous]
                if normal.size and anomaly.size:
                    auc, pauc = _roc(normal, anomaly)
                    groups.append(GroupResult(name, normal.size, anomaly.size, auc, pauc))
        else:
            normal = scores[~anomalous]
            for name in sorted(set(groups_of[anomalous])):
                anomaly = scores[anomalous & (groups_of == name)]
                auc, pauc = _roc(normal, anomaly)
                groups.append(GroupResult(name, normal.size, anomaly.size, auc, pauc))
    pooled = _roc(scores[~anomalous], scores[anomalous]) if has_both else None
    headline: tuple[float | None, float | None] = (None, None)
    averaging = "pooled"
    if layout == "dcase" and groups:
        headline = (
            float(np.mean([g.auc for g in groups])),
            float(np.mean([g.pauc for g in groups])),
        )
        averaging = "mean over machine IDs"
    elif pooled is not None:
        headline = pooled

    flagged = Decision(threshold).anomalies(scores)
    true_positives = int(np.sum(flagged & anomalous))
    precision = _ratio(true_positives, int(flagged.sum()))
    recall = _ratio(true_positives, int(anomalous.sum()))
    f1 = None
    if precision is not None and recall is not None and precision + recall > 0:
        f1 = 2 * precision * recall / (precision + recall)
    return EvaluationReport(
        n_normal=int(np.sum(~anomalous)),
        n_anomaly=int(np.sum(anomalous)),
        n_recordings=len({c.recording.recording_id for c in scored}),
        auc=headline[0],
        pauc=headline[1],
        averaging=averaging,
        groups=tuple(groups),
        threshold=threshold,
        precision=precision,
        recall=recall,
        f1=f1,
        false_alarm_rate=_ratio(int(np.sum(flagged & ~anomalous)), int(np.sum(~anomalous))),
        pooled_auc=None if pooled is None else pooled[0],
    )


def format_report(report: EvaluationReport) -> str:
    """A short human-readable table of the report."""

    def figure(value: float | None) -> str:
        return "n/a" if value is None or math.isnan(value) else f"{value:.4f}"

    lines = [
        f"clips: {report.n_normal} normal, {report.n_anomaly} anomalous "
        f"from {report.n_recordings} recordings",
        f"AUC {figure(report.auc)}  pAUC {figure(report.pauc)}  ({report.averaging})",
    ]
    lines += [
        f"  {g.name}: AUC {g.auc:.4f}  pAUC {g.pauc:.4f}  ({g.n_normal} normal, "
        f"{g.n_anomaly} anomalous)"
        for g in report.groups
    ]
    lines.append(
        f"at the clip threshold {report.threshold:.6g}: precision {figure(report.precision)}  "
        f"recall {figure(report.recall)}  F1 {figure(report.f1)}  "
        f"false-alarm rate {figure(report.false_alarm_rate)}"
    )
    return "\n".join(lines)

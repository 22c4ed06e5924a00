"""Plain-words warnings after training: too few normal recordings or clips behind the thresholds,
a threshold that misses anomalies the model ranks well, or false alarms on the test recordings
beyond what was predicted."""

from __future__ import annotations

import math

from service.bundle.manifest import AudioManifest
from training.audio.evaluation import EvaluationReport
from training.audio.operating_points import ThresholdScores

# "The model ranks well": AUC at least this high...
HIGH_AUC = 0.8
# ...while the threshold catches less than this share of the anomalous clips.
LOW_RECALL = 0.5


def training_warnings(
    manifest: AudioManifest,
    scores: ThresholdScores,
    report: EvaluationReport,
    min_recordings: int,
) -> tuple[str, ...]:
    """Warnings about the default operating point of a freshly trained bundle."""
    found: list[str] = []
    point = next(p for p in manifest.operating_points if p.name == manifest.default_operating_point)
    clip = point.predicted["clip"]
    if scores.n_recordings < min_recordings:
        found.append(
            f"the thresholds rest on only {scores.n_recordings} normal recordings "
            f"({scores.clip.size} clips), fewer than {min_recordings} "
            f"(--min-threshold-recordings): the false-alarm rate per clip could lie anywhere "
            f"from {clip.low:.3f} to {clip.high:.3f}. Record at least "
            f"{min_recordings - scores.n_recordings} more normal recordings of this machine, "
            "in the conditions it runs in, and train again."
        )
    needed = math.ceil(1 / point.target - 1) if point.rule == "false_alarm_rate" else 0
    if scores.clip.size < needed:
        found.append(
            f"a false-alarm rate of {point.target:g} per clip needs at least {needed} normal "
            f"clips to be checked on data; the thresholds rest on {scores.clip.size}, so the "
            "clip threshold extrapolates a Gamma fit. Cut the recordings into shorter clips "
            "(--clip-seconds) or add normal recordings."
        )
    auc, recall = report.auc, report.recall
    if auc is not None and recall is not None and auc >= HIGH_AUC and recall < LOW_RECALL:
        found.append(
            f"on the test recordings the model ranks anomalies well (AUC {auc:.2f}) but the "
            f"clip threshold catches only {recall:.0%} of the anomalous clips: the threshold, "
            "not the model, misses them. A higher --false-alarm-rate trades more false alarms "
            "for fewer misses; more normal recordings make the threshold surer."
        )
    measured = report.false_alarm_rate
    if measured is not None and measured > clip.high:
        found.append(
            f"the clip threshold flagged {measured:.1%} of the {report.n_normal} normal test "
            f"clips, above the predicted {clip.low:.3f} to {clip.high:.3f}: the test recordings "
            "sound unlike the training ones (another machine, load or background?)."
        )
    return tuple(found)

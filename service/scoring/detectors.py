"""A served model's scorer paired, once, with the decisions of the operating point applied to it
(River's `ThresholdFilter(detector, threshold)`): the one place where scores become verdicts.

The registry builds a detector when it loads a bundle; pipelines only call it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from service.bundle.manifest import AudioManifest, ManifestError, WindowsManifest
from service.scoring.audio import AudioScorer
from service.scoring.decision import Decision
from service.scoring.windows import AnomalyRun, StepScores, WindowsScorer, anomaly_runs


@dataclass(frozen=True)
class OperatingPointChoice:
    """Which operating point to apply (AUSCULT_OPERATING_POINT, AUSCULT_MODEL_OPERATING_POINTS):
    a point's name or a rule ('gamma', 'false_alarm_rate', 'percentile')."""

    every_model: str | None = None  # applied where a bundle has it, else the bundle's default
    per_model: Mapping[str, str] = field(default_factory=dict)  # must exist in that bundle

    def for_bundle(self, manifest: AudioManifest | WindowsManifest) -> str | None:
        """The choice to resolve in this bundle (None: its default). Raises ManifestError when a
        per-model choice names a point the bundle lacks, so that the bundle is refused."""
        chosen = self.per_model.get(manifest.name)
        if chosen is not None:
            _thresholds(manifest, chosen)
            return chosen
        if self.every_model is None:
            return None
        try:
            _thresholds(manifest, self.every_model)
        except ManifestError:
            return None
        return self.every_model


def _thresholds(manifest: AudioManifest | WindowsManifest, choice: str | None) -> list[float]:
    if isinstance(manifest, AudioManifest):
        return list(manifest.thresholds(choice))
    return [manifest.step_threshold(choice)]


def _point_name(manifest: AudioManifest | WindowsManifest, choice: str | None) -> str:
    point = manifest.operating_point(choice)
    if point is not None:
        return point.name
    # A bundle without operating points offers its gamma decisions, and a windows bundle its
    # percentile threshold (see WindowsManifest.step_threshold).
    return "percentile" if choice == "percentile" else "gamma"


@dataclass(frozen=True)
class BlockVerdict:
    index: int  # from the clip's or stream's first block
    start_s: float
    end_s: float
    score: float
    ratio: float
    anomaly: bool
    # (n_mels,) the block's reconstruction error per mel band, where the scorer's caller kept it:
    # alarms name their worst bands from it.
    band_error: NDArray[np.floating] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class AudioDetector:
    scorer: AudioScorer
    operating_point: str
    clip: Decision
    block: Decision

    @classmethod
    def at(cls, scorer: AudioScorer, choice: OperatingPointChoice) -> AudioDetector:
        chosen = choice.for_bundle(scorer.manifest)
        clip, block = scorer.manifest.thresholds(chosen)
        return cls(scorer, _point_name(scorer.manifest, chosen), Decision(clip), Decision(block))

    def block_verdicts(
        self,
        first_index: int,
        scores: NDArray[np.floating],
        start_s: NDArray[np.floating],
        end_s: NDArray[np.floating],
        band_error: NDArray[np.floating] | None = None,
    ) -> list[BlockVerdict]:
        """Verdicts on consecutive blocks, the first being block `first_index`; `band_error`
        (n_blocks, n_mels), when given, is kept on each verdict."""
        anomalies = self.block.anomalies(scores)
        ratios = self.block.ratios(scores)
        return [
            BlockVerdict(
                index=first_index + i,
                start_s=float(start_s[i]),
                end_s=float(end_s[i]),
                score=float(scores[i]),
                ratio=float(ratios[i]),
                anomaly=bool(anomalies[i]),
                band_error=None if band_error is None else band_error[i],
            )
            for i in range(len(scores))
        ]


@dataclass(frozen=True)
class StepVerdicts:
    """Verdicts on consecutive steps, the first being step `first_step` of the series or stream."""

    first_step: int
    scores: NDArray[np.float64]
    ratios: NDArray[np.float64]
    anomalies: NDArray[np.bool_]
    runs: list[AnomalyRun]  # runs of anomalous steps among these, with their top channels

    @property
    def n_steps(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True)
class WindowsDetector:
    scorer: WindowsScorer
    operating_point: str
    step: Decision

    @classmethod
    def at(cls, scorer: WindowsScorer, choice: OperatingPointChoice) -> WindowsDetector:
        chosen = choice.for_bundle(scorer.manifest)
        threshold = scorer.manifest.step_threshold(chosen)
        return cls(scorer, _point_name(scorer.manifest, chosen), Decision(threshold))

    def step_verdicts(self, steps: StepScores, top_channels: int) -> StepVerdicts:
        """Per-step verdicts, and each run of anomalous steps with its `top_channels` channels."""
        anomalies = self.step.anomalies(steps.scores)
        return StepVerdicts(
            first_step=steps.first_step,
            scores=steps.scores,
            ratios=self.step.ratios(steps.scores),
            anomalies=anomalies,
            runs=anomaly_runs(steps, anomalies, self.scorer.channel_names, top_channels),
        )

"""An audio report's data: every clip of the recordings the bundle never saw, scored through the
exported bundle by the service's `AudioScorer`, the figures measured at each operating point, and
the block scores of one clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from service.audio.decode import AudioDecodeError, load_audio
from service.bundle.loader import LoadedBundle
from service.bundle.manifest import AudioManifest
from service.features.logmel import AudioTooShortError, mel_band_centres_hz
from service.scoring.audio import AudioScorer, ClipScore
from training.audio.clips import iter_clips
from training.audio.datasets import DatasetError, open_dataset
from training.audio.evaluation import EvaluationReport, ScoredClip, evaluate_scores
from training.audio.splits import unseen_recordings
from training.report.points import ShownPoint, shown_points


@dataclass(frozen=True)
class ClipDetail:
    """One clip's block scores and the per-band error of its worst block."""

    name: str
    score: ClipScore
    band_hz: NDArray[np.float64]


@dataclass(frozen=True)
class HeldOutScores:
    data: str  # the data set, in words
    note: str  # which recordings were scored and why
    clips: tuple[ScoredClip, ...]
    block_scores: NDArray[np.float64]
    block_anomalous: NDArray[np.bool_]  # each block's clip is from an anomalous recording
    # At each operating point's clip threshold, by point name.
    measured: dict[str, EvaluationReport]

    @property
    def clip_scores(self) -> NDArray[np.float64]:
        return np.array([c.score for c in self.clips], dtype=np.float64)

    @property
    def clip_anomalous(self) -> NDArray[np.bool_]:
        return np.array([c.recording.is_anomaly for c in self.clips], dtype=bool)


@dataclass(frozen=True)
class AudioReportData:
    manifest: AudioManifest
    points: list[ShownPoint]
    held_out: HeldOutScores | None  # None when no data folder was given
    detail: ClipDetail | None


def _score_held_out(
    bundle: LoadedBundle, scorer: AudioScorer, data_dir: Path, points: list[ShownPoint]
) -> tuple[HeldOutScores, ClipDetail | None]:
    manifest = scorer.manifest
    dataset = open_dataset(data_dir, preferred_machine_type=manifest.machine_type)
    recordings, note = unseen_recordings(dataset, bundle.path, include_seen=False)
    if not recordings:
        raise DatasetError(f"{dataset.root} has no recordings the bundle did not see")
    clips: list[ScoredClip] = []
    blocks: list[NDArray[np.float32]] = []
    worst: tuple[str, ClipScore] | None = None
    sample_rate, clip_seconds = manifest.features.sample_rate, manifest.training.clip_seconds
    for clip in iter_clips(recordings, sample_rate, clip_seconds):
        try:
            result = scorer.score_samples(clip.samples)
        except AudioTooShortError as exc:
            raise DatasetError(f"clip {clip.clip_id} of {clip.recording.path}: {exc}") from exc
        clips.append(ScoredClip(clip.recording, clip.index, result.clip_score))
        blocks.append(result.block_scores)
        if worst is None or result.clip_score > worst[1].clip_score:
            worst = (clip.clip_id, result)
    measured = {
        point.name: evaluate_scores(clips, dataset.layout, point.thresholds["clip"])
        for point in points
    }
    held_out = HeldOutScores(
        data=dataset.describe(),
        note=note,
        clips=tuple(clips),
        block_scores=np.concatenate(blocks).astype(np.float64),
        block_anomalous=np.concatenate(
            [np.full(b.size, c.recording.is_anomaly) for c, b in zip(clips, blocks, strict=True)]
        ),
        measured=measured,
    )
    detail = None
    if worst is not None:
        detail = ClipDetail(
            f"{worst[0]} (the highest-scoring clip scored)",
            worst[1],
            mel_band_centres_hz(manifest.features),
        )
    return held_out, detail


def audio_report_data(
    bundle: LoadedBundle, data_dir: Path | None, clip_file: Path | None = None
) -> AudioReportData:
    """Score the recordings of `data_dir` the bundle never saw (all of them when it has no
    split.json, as `auscult evaluate audio` does); the detailed clip is `clip_file` scored whole,
    else the highest-scoring clip."""
    manifest = bundle.manifest
    if not isinstance(manifest, AudioManifest):
        raise ValueError(f"bundle {bundle.path} is a {manifest.kind} bundle, not an audio one")
    scorer = AudioScorer(bundle)
    points = shown_points(manifest)
    held_out, detail = (None, None)
    if data_dir is not None:
        held_out, detail = _score_held_out(bundle, scorer, data_dir, points)
    if clip_file is not None:
        try:
            samples = load_audio(clip_file, manifest.features.sample_rate)
            detail = ClipDetail(
                clip_file.name,
                scorer.score_samples(samples),
                mel_band_centres_hz(manifest.features),
            )
        except (AudioDecodeError, AudioTooShortError) as exc:
            raise DatasetError(f"cannot score {clip_file}: {exc}") from exc
    return AudioReportData(manifest, points, held_out, detail)

"""The protocol the audio experiments behind docs/RESULTS.md share: a test split fixed per seed
across labelled-anomaly counts, training through the pipeline, scoring through the ONNX bundle."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.bundle.loader import load_bundle
from service.bundle.manifest import AudioManifest
from training.audio.backbones import Backbone
from training.audio.datasets import Dataset, Layout, Recording, open_dataset
from training.audio.evaluation import (
    EvaluationReport,
    ScoredClip,
    evaluate_scores,
    score_recordings,
)
from training.audio.pipeline import AudioTrainingConfig, AudioTrainingResult, train_audio_bundle
from training.audio.splits import split_recordings
from training.audio.stages import FitSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("AUSCULT_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))
RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
SEEDS = (0, 1, 2, 3)
R = 0.99
# Every data set here is 16 kHz; the pipeline's default rate.
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class DataSet:
    """One data set of an experiment and how its recordings are cut and held out."""

    name: str
    path: Path
    machine_type: str | None
    clip_seconds: float | None
    # Anomalous recordings every count's test keeps; the rest may be labelled for training.
    test_anomalies: int

    def open(self) -> Dataset:
        return open_dataset(self.path, self.machine_type)

    @property
    def max_labelled(self) -> int:
        return len(self.open().anomalous) - self.test_anomalies


def fixed_test(data: DataSet, seed: int) -> tuple[Recording, ...]:
    """The test recordings of the split with the most labelled anomalies. The pipeline deals
    labelled anomalies from one seeded order that does not depend on their count, so every
    smaller count leaves these recordings unseen too (`check_unseen` verifies it per run)."""
    return split_recordings(data.open(), data.max_labelled, seed=seed).test


def train(
    data: DataSet, labelled: int, backbone: Backbone, seed: int, out: Path
) -> AudioTrainingResult:
    """One bundle through `train_audio_bundle`, with the CLI's defaults and one torch thread."""
    config = AudioTrainingConfig(
        data=data.path,
        out=out,
        labeled_anomalies=labelled,
        r=R,
        machine_type=data.machine_type,
        clip_seconds=data.clip_seconds,
        backbone=backbone,
        sample_rate=SAMPLE_RATE,
        stage1=FitSettings(max_epochs=100, patience=10, quiet=True),
        stage2=FitSettings(max_epochs=50, patience=10, quiet=True),
        seed=seed,
        name=f"{data.name}-{backbone}-{labelled}-{seed}",
        threads=1,
        overwrite=True,
    )
    return train_audio_bundle(config)


def check_unseen(result: AudioTrainingResult, test: Sequence[Recording]) -> None:
    """Refuse a run whose bundle saw any recording of the fixed test set."""
    seen = {r.recording_id for r in result.split.seen}
    overlap = sorted(seen & {r.recording_id for r in test})
    if overlap:
        raise RuntimeError(f"{result.bundle_dir} saw fixed test recordings {overlap}")


def evaluate(
    bundle_dir: Path, test: Sequence[Recording], data: DataSet, layout: Layout
) -> EvaluationReport:
    """Score the fixed test clips through the exported bundle, as `auscult evaluate audio`."""
    bundle = load_bundle(bundle_dir)
    assert isinstance(bundle.manifest, AudioManifest)
    return evaluate_scores(
        score_recordings(bundle, test, data.clip_seconds),
        layout,
        bundle.manifest.clip_decision.threshold,
    )


def figures(report: EvaluationReport) -> dict[str, Any]:
    """What a result row keeps of an evaluation: pooled AUC over all test clips (the headline
    for these small sets), the per-ID mean where DCASE has one, and the clip verdicts."""
    return {
        "auc": report.pooled_auc,
        "auc_id_mean": report.auc if report.averaging != "pooled" else None,
        "pauc": report.pauc,
        "false_alarm_rate": report.false_alarm_rate,
        "recall": report.recall,
        "test_normal_clips": report.n_normal,
        "test_anomalous_clips": report.n_anomaly,
        "test_recordings": report.n_recordings,
    }


def scored_clips(
    test: Sequence[Recording], clip_index: Sequence[tuple[str, int]], scores: np.ndarray
) -> list[ScoredClip]:
    """ScoredClips of scores computed outside `score_recordings` (mixed clips, the peer)."""
    by_id = {r.recording_id: r for r in test}
    return [
        ScoredClip(by_id[rid], index, float(score))
        for (rid, index), score in zip(clip_index, scores, strict=True)
    ]


def write_results(name: str, document: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path

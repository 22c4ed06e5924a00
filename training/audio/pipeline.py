"""From a folder of labelled recordings to a served bundle: split by recording, stage 1, the Gamma
margin, stage 2, ONNX export, thresholds fitted on normal scores the model never trained on
(out-of-fold by recording, or held-out recordings when there are enough), evaluation."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
import torch

from service.bundle.loader import load_bundle
from service.bundle.manifest import (
    HISTORY_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    AudioManifest,
    EpochLoss,
    LogMelSettings,
    TrainingData,
    TrainingHistory,
    write_history,
    write_manifest,
)
from service.features.logmel import LogMelExtractor
from training.audio.advice import training_warnings
from training.audio.backbones import Backbone, backbone_recipe
from training.audio.blocks import BlockSet, recording_blocks
from training.audio.comparators import Comparator, train_comparator
from training.audio.datasets import Dataset, DatasetError, Recording, open_dataset
from training.audio.evaluation import EvaluationReport, evaluate_scores, score_recordings
from training.audio.export import TORCH_FILES, export_onnx, export_torch
from training.audio.folds import out_of_fold_scores
from training.audio.losses import ContrastiveLoss
from training.audio.model import BlockScore, BlockScorer
from training.audio.operating_points import (
    FittedThresholds,
    ThresholdMethod,
    ThresholdScores,
    fit_thresholds,
)
from training.audio.splits import SPLIT_FILE, RecordingSplit, SplitFractions, split_recordings
from training.audio.splits import write_split as write_split_file
from training.audio.stages import (
    FitReport,
    FitSettings,
    TrainedModel,
    TrainingBlocks,
    train_two_stages,
)
from training.cli_arguments import check_out

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Training blocks are held in memory: about 1 GiB of float32 at most, whatever the data size.
TRAIN_BLOCK_BYTES = 1 << 30
BUNDLE_FILES = (MODEL_FILE, MANIFEST_FILE, SPLIT_FILE, HISTORY_FILE, *TORCH_FILES)
# A held-out threshold side this large gives thresholds as sure as out-of-fold scores would,
# without the k extra trainings; smaller ones are folded into training (out-of-fold scores).
HELD_OUT_RECORDINGS = 20
ThresholdFitChoice = Literal["auto", "out_of_fold", "held_out"]
AudioModel = Literal["autoencoder"] | Comparator
AUDIO_MODELS: tuple[AudioModel, ...] = ("autoencoder", "usad", "deep_svdd", "devnet")
_MODEL_NAMES = {
    "autoencoder": "Weakly supervised autoencoder",
    "usad": "USAD",
    "deep_svdd": "Deep SVDD",
    "devnet": "DevNet",
}


@dataclass(frozen=True)
class AudioTrainingConfig:
    data: Path
    out: Path
    labeled_anomalies: int = 0
    r: float = 0.99
    # r of the served decisions; None uses `r`.
    decision_r: float | None = None
    # The clip false-alarm rate the 'false_alarm_rate' operating point is set for.
    false_alarm_rate: float = 0.01
    # 'auto': held-out recordings when the threshold side has HELD_OUT_RECORDINGS, else
    # out-of-fold scores of every normal training recording.
    threshold_fit: ThresholdFitChoice = "auto"
    # Below this many normal recordings behind the thresholds, training warns.
    min_threshold_recordings: int = 10
    machine_type: str | None = None
    clip_seconds: float | None = None
    backbone: Backbone = "block"
    # The served block score (training minimises the reconstruction error either way). The
    # default, latent_knn, beat PyOD's AudioAE on interfered UAV clips and on MIMII fan where
    # the reconstruction error did not (docs/RESULTS.md, "Audio at a glance").
    score: BlockScore = "latent_knn"
    # The weakly supervised autoencoder, or one of the paper's comparators in its place.
    model: AudioModel = "autoencoder"
    sample_rate: int = 16000
    # Frames between training blocks; None uses the backbone's recipe.
    train_hop_frames: int | None = None
    loss: ContrastiveLoss = "hinge"
    stage1: FitSettings = field(default_factory=lambda: FitSettings(max_epochs=100, patience=10))
    stage2: FitSettings = field(default_factory=lambda: FitSettings(max_epochs=50, patience=10))
    fractions: SplitFractions = field(default_factory=SplitFractions)
    seed: int = 0
    name: str | None = None
    version: str = "1"
    description: str | None = None
    # How the manifest names the training data; None describes the folder it was read from.
    data_description: str | None = None
    # torch threads. One keeps runs bit-for-bit reproducible and is the fastest choice on a
    # shared machine, where more threads wait on each other.
    threads: int = 1
    overwrite: bool = False


@dataclass(frozen=True)
class AudioTrainingResult:
    bundle_dir: Path
    manifest: AudioManifest
    dataset: Dataset
    split: RecordingSplit
    stage1: FitReport
    stage2: FitReport | None
    # At the bundle's default operating point; `point_evaluations` holds every point's.
    evaluation: EvaluationReport
    point_evaluations: dict[str, EvaluationReport]
    threshold_scores: ThresholdScores
    # Plain-words warnings about data too few for the thresholds, or a weak threshold.
    warnings: tuple[str, ...]
    seconds: float


def _bundle_name(config: AudioTrainingConfig) -> str:
    name = config.name if config.name is not None else Path(config.out).resolve().name
    if not _NAME.match(name):
        raise ValueError(
            f"bundle name {name!r} must start with a letter or digit and hold at most 64 "
            "letters, digits, '_', '.' or '-' (choose one with --name)"
        )
    return name


def _onnx_scores(model_path: Path, blocks: np.ndarray) -> np.ndarray:
    """Block scores from the exported graph itself, so thresholds fit what is served."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    scores = [
        session.run(["score"], {"blocks": blocks[start : start + 4096]})[0]
        for start in range(0, len(blocks), 4096)
    ]
    return np.concatenate(scores).astype(np.float64)


def _held_out_scores(
    model_path: Path, threshold_blocks: BlockSet, recordings: tuple[Recording, ...]
) -> ThresholdScores:
    """Clip and block scores of the final model, as exported, on held-out normal recordings."""
    scores = _onnx_scores(model_path, threshold_blocks.blocks)
    return ThresholdScores(
        method="held_out",
        folds=None,
        recording_ids=tuple(r.recording_id for r in recordings),
        clip=threshold_blocks.clip_means(scores),
        clip_recording=threshold_blocks.recording_of_clip,
        block=scores,
        block_recording=threshold_blocks.recording_of_block,
    )


@dataclass(frozen=True)
class _SideBlocks:
    train_normal: BlockSet
    validation_normal: BlockSet
    threshold_normal: BlockSet
    train_anomalous: BlockSet
    validation_anomalous: BlockSet


def _read_blocks(
    config: AudioTrainingConfig,
    split: RecordingSplit,
    extractor: LogMelExtractor,
    train_hop: int,
    method: ThresholdMethod,
) -> _SideBlocks:
    """Every side's blocks, read before training so that data which cannot give a bundle
    fails fast; training sides are cut every train_hop frames, the others as served."""
    max_blocks = TRAIN_BLOCK_BYTES // (4 * extractor.settings.block_size)

    def blocks_of(side: str, anomalous: bool, hop: int | None = None) -> BlockSet:
        recordings = [r for r in split.sides()[side] if r.is_anomaly == anomalous]
        return recording_blocks(recordings, extractor, config.clip_seconds, hop, max_blocks)

    blocks = _SideBlocks(
        train_normal=blocks_of("train", False, train_hop),
        validation_normal=blocks_of("validation", False),
        threshold_normal=blocks_of("threshold", False),
        train_anomalous=blocks_of("train", True, train_hop),
        validation_anomalous=blocks_of("validation", True),
    )
    _check_sides(extractor, blocks, config.labeled_anomalies, method)
    return blocks


def _check_sides(
    extractor: LogMelExtractor,
    blocks: _SideBlocks,
    labeled_anomalies: int,
    method: ThresholdMethod,
) -> None:
    shortest = extractor.min_samples / extractor.settings.sample_rate
    for side, found in (
        ("training", blocks.train_normal),
        ("validation", blocks.validation_normal),
    ):
        if len(found.blocks) == 0:
            raise DatasetError(
                f"the {side} normal recordings give no clip long enough for one block "
                f"({shortest:.2f} s)"
            )
    if method == "held_out" and blocks.threshold_normal.n_clips < 2:
        raise DatasetError(
            "the held-out normal recordings for the thresholds give "
            f"{blocks.threshold_normal.n_clips} clip(s); a Gamma fit needs at least 2: cut the "
            "recordings into clips with --clip-seconds, raise --threshold-fraction or fit the "
            "thresholds out of fold (--threshold-fit out_of_fold)"
        )
    if labeled_anomalies > 0 and len(blocks.train_anomalous.blocks) == 0:
        raise DatasetError(
            f"the labelled anomalous recordings give no clip long enough for one block "
            f"({shortest:.2f} s)"
        )


@dataclass(frozen=True)
class PreparedTraining:
    """What training reads before any model exists: the data set, its split by recording, how
    the thresholds will be fitted, and every side's log-mel blocks."""

    dataset: Dataset
    split: RecordingSplit
    method: ThresholdMethod
    features: LogMelSettings
    extractor: LogMelExtractor
    blocks: _SideBlocks

    def training_blocks(self) -> TrainingBlocks:
        """What the stages train and early-stop on."""
        return TrainingBlocks(
            train_normal=self.blocks.train_normal.blocks,
            validation_normal=self.blocks.validation_normal.blocks,
            train_anomalous=self.blocks.train_anomalous.blocks,
            validation_anomalous=self.blocks.validation_anomalous.blocks,
        )


def prepare_training(config: AudioTrainingConfig) -> PreparedTraining:
    """Open the data, split it by recording and read every side's blocks, as
    `train_audio_bundle` does before it trains."""
    dataset = open_dataset(config.data, config.machine_type)
    split = split_recordings(dataset, config.labeled_anomalies, config.fractions, config.seed)
    method = _threshold_method(config, split)
    if method == "out_of_fold":
        split = split.without_threshold_side()
    recipe = backbone_recipe(config.backbone, config.sample_rate)
    extractor = LogMelExtractor(recipe.features)
    blocks = _read_blocks(
        config, split, extractor, config.train_hop_frames or recipe.train_hop_frames, method
    )
    return PreparedTraining(dataset, split, method, recipe.features, extractor, blocks)


def _train(
    config: AudioTrainingConfig,
    blocks: _SideBlocks,
    features: LogMelSettings,
    train_normal: np.ndarray | None = None,
    seed: int | None = None,
    stage1: FitSettings | None = None,
    stage2: FitSettings | None = None,
) -> TrainedModel:
    """Stage 1, the Gamma margin a on its training scores, then stage 2 when anomalies are
    labelled. The overrides train a fold model: other normal blocks, seed and epochs."""
    if config.threads < 1:
        raise ValueError(f"threads must be at least 1, got {config.threads}")
    torch.set_num_threads(config.threads)
    training = TrainingBlocks(
        train_normal=blocks.train_normal.blocks if train_normal is None else train_normal,
        validation_normal=blocks.validation_normal.blocks,
        train_anomalous=blocks.train_anomalous.blocks,
        validation_anomalous=blocks.validation_anomalous.blocks,
    )
    if config.model != "autoencoder":
        return train_comparator(
            config.model,
            training,
            features.n_mels,
            features.frames_per_block,
            config.r,
            stage1 or config.stage1,
            (stage2 or config.stage2) if config.labeled_anomalies > 0 else None,
            config.seed if seed is None else seed,
        )
    return train_two_stages(
        training,
        features.n_mels,
        features.frames_per_block,
        config.r,
        config.loss,
        stage1 or config.stage1,
        (stage2 or config.stage2) if config.labeled_anomalies > 0 else None,
        config.seed if seed is None else seed,
        config.score,
    )


def _capped(settings: FitSettings, report: FitReport | None) -> FitSettings:
    """A fold model trains no longer than the final model's kept epoch: the same training, without
    the patience epochs that early stopping spends after it."""
    if report is None:
        return settings
    return replace(settings, max_epochs=max(1, report.best_epoch), quiet=True)


def _served_blocks(
    train_normal: BlockSet,
    recordings: tuple[Recording, ...],
    extractor: LogMelExtractor,
    clip_seconds: float | None,
) -> BlockSet:
    """The training normal recordings' blocks at the served hop: every n-th training block when
    the hops allow it, otherwise read again."""
    served_hop = extractor.settings.block_hop_frames
    if served_hop % train_normal.hop_frames == 0:
        return train_normal.every(served_hop // train_normal.hop_frames)
    return recording_blocks(recordings, extractor, clip_seconds)


def _threshold_scores(
    config: AudioTrainingConfig,
    split: RecordingSplit,
    blocks: _SideBlocks,
    features: LogMelSettings,
    extractor: LogMelExtractor,
    final: TrainedModel,
    method: ThresholdMethod,
    model_path: Path,
) -> ThresholdScores:
    if method == "held_out":
        return _held_out_scores(
            model_path, blocks.threshold_normal, tuple(r for r in split.threshold)
        )
    normal = tuple(r for r in split.train if not r.is_anomaly)
    stage1 = _capped(config.stage1, final.stage1)
    stage2 = _capped(config.stage2, final.stage2)

    def train_fold(train_normal: np.ndarray, fold: int) -> BlockScorer:
        seed = config.seed * 1009 + fold + 1
        return _train(config, blocks, features, train_normal, seed, stage1, stage2).scorer

    return out_of_fold_scores(
        blocks.train_normal,
        _served_blocks(blocks.train_normal, normal, extractor, config.clip_seconds),
        tuple(r.recording_id for r in normal),
        train_fold,
    )


def _history(trained: TrainedModel) -> TrainingHistory:
    stages = {"stage1": trained.stage1}
    if trained.stage2 is not None:
        stages["stage2"] = trained.stage2
    return TrainingHistory(
        stages={
            name: [
                EpochLoss(epoch=i + 1, train_loss=train, validation_loss=validation)
                for i, (train, validation) in enumerate(
                    zip(report.train_losses, report.validation_losses, strict=True)
                )
            ]
            for name, report in stages.items()
        },
        best_epoch={name: report.best_epoch for name, report in stages.items()},
    )


def _manifest(
    config: AudioTrainingConfig,
    dataset: Dataset,
    split: RecordingSplit,
    blocks: _SideBlocks,
    trained: TrainedModel,
    features: LogMelSettings,
    fitted: FittedThresholds,
) -> AudioManifest:
    labelled = [r for r in split.seen if r.is_anomaly]
    stage2 = trained.stage2
    return AudioManifest(
        name=_bundle_name(config),
        version=config.version,
        created_at=datetime.now(UTC),
        description=config.description
        or (
            f"{_MODEL_NAMES[config.model]} ({config.backbone} backbone"
            + (f", {config.score} score" if config.model == "autoencoder" else "")
            + f") for {dataset.machine_type}, {len(labelled)} labelled anomalous recordings"
        ),
        training=TrainingData(
            data=config.data_description or dataset.describe(),
            n_normal=blocks.train_normal.n_clips,
            n_anomaly=blocks.train_anomalous.n_clips if stage2 or config.model == "devnet" else 0,
            clip_seconds=config.clip_seconds,
            seed=config.seed,
            layout=dataset.layout,
            normal_recordings=sum(not r.is_anomaly for r in split.train),
            anomaly_recordings=len(labelled),
            train_hop_frames=blocks.train_normal.hop_frames,
            stage2_loss=config.loss if stage2 else None,
            stage1_epochs=trained.stage1.best_epoch,
            stage2_epochs=stage2.best_epoch if stage2 else None,
            block_score=config.score if config.model == "autoencoder" else config.model,
        ),
        machine_type=dataset.machine_type,
        backbone=config.backbone,
        features=features,
        training_margin=trained.margin,
        clip_decision=fitted.clip_decision,
        block_decision=fitted.block_decision,
        operating_points=list(fitted.points),
        default_operating_point=fitted.default_point,
    )


def _publish(partial: Path, out: Path) -> None:
    """Move the finished bundle into --out, the manifest last, so that a registry watching the
    folder never sees a manifest without its model."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (SPLIT_FILE, HISTORY_FILE, *TORCH_FILES, MODEL_FILE, MANIFEST_FILE):
        os.replace(partial / name, out / name)


def _threshold_method(config: AudioTrainingConfig, split: RecordingSplit) -> ThresholdMethod:
    if config.threshold_fit != "auto":
        return config.threshold_fit
    return "held_out" if len(split.threshold) >= HELD_OUT_RECORDINGS else "out_of_fold"


def _evaluate(
    partial: Path,
    manifest: AudioManifest,
    split: RecordingSplit,
    dataset: Dataset,
    clip_seconds: float | None,
) -> dict[str, EvaluationReport]:
    """The test recordings scored once through the exported bundle, judged at every operating
    point's clip threshold."""
    scored = score_recordings(load_bundle(partial), split.test, clip_seconds)
    return {
        point.name: evaluate_scores(scored, dataset.layout, point.thresholds["clip"])
        for point in manifest.operating_points
    }


def _with_evaluation(
    manifest: AudioManifest,
    reports: dict[str, EvaluationReport],
    split: RecordingSplit,
    dataset: Dataset,
) -> AudioManifest:
    default = manifest.default_operating_point or next(iter(reports))
    n_test_normal = sum(not r.is_anomaly for r in split.test)
    evaluation = reports[default].as_manifest(
        f"held-out test recordings of {dataset.machine_type} ({n_test_normal} "
        f"normal, {len(split.test) - n_test_normal} anomalous), never used for "
        f"training, early stopping or thresholds; verdicts at operating point {default!r}"
    )
    extra = dict(evaluation.extra)
    for name, report in reports.items():
        for figure in ("false_alarm_rate", "recall", "precision"):
            value = getattr(report, figure)
            if value is not None:
                extra[f"{figure}[{name}]"] = value
    return manifest.model_copy(
        update={"evaluation": evaluation.model_copy(update={"extra": extra})}
    )


def train_audio_bundle(config: AudioTrainingConfig) -> AudioTrainingResult:
    """Train, export, threshold and evaluate one bundle; every random choice follows
    `config.seed`. The bundle is built in a hidden folder beside --out and moved in at the end."""
    started = time.perf_counter()
    _bundle_name(config)  # refuse a bad name before any work
    if not 0.0 < config.false_alarm_rate < 1.0:
        raise ValueError(
            f"the false-alarm rate must lie between 0 and 1, got {config.false_alarm_rate}"
        )
    out = Path(config.out)
    check_out(out, config.overwrite, BUNDLE_FILES)
    prepared = prepare_training(config)
    dataset, split, method = prepared.dataset, prepared.split, prepared.method
    features, extractor, blocks = prepared.features, prepared.extractor, prepared.blocks
    trained = _train(config, blocks, features)

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        model_path = export_onnx(trained.scorer, partial / MODEL_FILE)
        export_torch(trained.scorer, partial)
        scores = _threshold_scores(
            config, split, blocks, features, extractor, trained, method, model_path
        )
        fitted = fit_thresholds(
            scores,
            config.decision_r if config.decision_r is not None else config.r,
            config.false_alarm_rate,
        )
        manifest = _manifest(config, dataset, split, blocks, trained, features, fitted)
        write_manifest(partial, manifest)
        write_split_file(partial, split, dataset, config.seed)
        write_history(partial, _history(trained))
        reports = _evaluate(partial, manifest, split, dataset, config.clip_seconds)
        manifest = _with_evaluation(manifest, reports, split, dataset)
        write_manifest(partial, manifest)
        _publish(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    default = manifest.default_operating_point or fitted.default_point
    return AudioTrainingResult(
        bundle_dir=out,
        manifest=manifest,
        dataset=dataset,
        split=split,
        stage1=trained.stage1,
        stage2=trained.stage2,
        evaluation=reports[default],
        point_evaluations=reports,
        threshold_scores=scores,
        warnings=training_warnings(
            manifest, scores, reports[default], config.min_threshold_recordings
        ),
        seconds=time.perf_counter() - started,
    )

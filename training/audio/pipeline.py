"""From a folder of labelled recordings to a served bundle: split by recording, stage 1, the Gamma
margin, stage 2, ONNX export, thresholds refitted on held-out normal data, evaluation."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from service.bundle.loader import load_bundle
from service.bundle.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    AudioManifest,
    GammaThreshold,
    LogMelSettings,
    TrainingData,
    write_manifest,
)
from service.features.logmel import LogMelExtractor
from training.audio.backbones import Backbone, backbone_recipe
from training.audio.blocks import BlockSet, recording_blocks
from training.audio.datasets import Dataset, DatasetError, open_dataset
from training.audio.evaluation import EvaluationReport, evaluate_scores, score_recordings
from training.audio.export import export_onnx
from training.audio.losses import ContrastiveLoss
from training.audio.model import BlockScorer
from training.audio.splits import SPLIT_FILE, RecordingSplit, SplitFractions, split_recordings
from training.audio.splits import write_split as write_split_file
from training.audio.stages import FitReport, FitSettings, block_scores, train_stage1, train_stage2
from training.thresholds import gamma_threshold

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Training blocks are held in memory: about 1 GiB of float32 at most, whatever the data size.
TRAIN_BLOCK_BYTES = 1 << 30
BUNDLE_FILES = (MODEL_FILE, MANIFEST_FILE, SPLIT_FILE)


@dataclass(frozen=True)
class AudioTrainingConfig:
    data: Path
    out: Path
    labeled_anomalies: int = 0
    r: float = 0.99
    # r of the served decisions; None uses `r`.
    decision_r: float | None = None
    machine_type: str | None = None
    clip_seconds: float | None = None
    backbone: Backbone = "block"
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
    evaluation: EvaluationReport
    seconds: float


def _bundle_name(config: AudioTrainingConfig) -> str:
    name = config.name if config.name is not None else Path(config.out).resolve().name
    if not _NAME.match(name):
        raise ValueError(
            f"bundle name {name!r} must start with a letter or digit and hold at most 64 "
            "letters, digits, '_', '.' or '-' (choose one with --name)"
        )
    return name


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    existing = [name for name in BUNDLE_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise ValueError(
            f"--out {out} already holds a bundle ({', '.join(existing)}); "
            "choose another folder or pass --overwrite"
        )


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


def _decisions(
    model_path: Path, threshold_blocks: BlockSet, r: float, n_recordings: int
) -> tuple[GammaThreshold, GammaThreshold]:
    """Clip and block Gamma thresholds of the final model on held-out normal recordings."""
    scores = _onnx_scores(model_path, threshold_blocks.blocks)
    where = f"{n_recordings} held-out normal recordings, final model"
    clip = gamma_threshold(
        threshold_blocks.clip_means(scores),
        r,
        f"clip scores of {threshold_blocks.n_clips} clips of {where}",
    )
    block = gamma_threshold(scores, r, f"scores of {scores.size} blocks of {where}")
    return clip, block


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
    _check_sides(extractor, blocks, config.labeled_anomalies)
    return blocks


def _check_sides(extractor: LogMelExtractor, blocks: _SideBlocks, labeled_anomalies: int) -> None:
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
    if blocks.threshold_normal.n_clips < 2:
        raise DatasetError(
            "the held-out normal recordings for the thresholds give "
            f"{blocks.threshold_normal.n_clips} clip(s); a Gamma fit needs at least 2: cut the "
            "recordings into clips with --clip-seconds or raise --threshold-fraction"
        )
    if labeled_anomalies > 0 and len(blocks.train_anomalous.blocks) == 0:
        raise DatasetError(
            f"the labelled anomalous recordings give no clip long enough for one block "
            f"({shortest:.2f} s)"
        )


@dataclass(frozen=True)
class _Trained:
    scorer: BlockScorer
    stage1: FitReport
    margin: GammaThreshold
    stage2: FitReport | None


def _train(config: AudioTrainingConfig, blocks: _SideBlocks, features: LogMelSettings) -> _Trained:
    """Stage 1, the Gamma margin a on its training scores, then stage 2 when anomalies are
    labelled."""
    if config.threads < 1:
        raise ValueError(f"threads must be at least 1, got {config.threads}")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    scorer = BlockScorer(features.n_mels, features.frames_per_block)
    scorer.set_standardisation(blocks.train_normal.blocks)
    normal = blocks.train_normal.blocks
    stage1 = train_stage1(scorer, normal, blocks.validation_normal.blocks, config.stage1, generator)
    margin = gamma_threshold(
        block_scores(scorer, normal),
        config.r,
        f"stage-1 scores of {len(normal)} training normal blocks",
    )
    stage2 = None
    if config.labeled_anomalies > 0:
        stage2 = train_stage2(
            scorer,
            normal,
            blocks.train_anomalous.blocks,
            blocks.validation_normal.blocks,
            blocks.validation_anomalous.blocks,
            margin.threshold,
            config.loss,
            config.stage2,
            generator,
        )
    return _Trained(scorer, stage1, margin, stage2)


def _manifest(
    config: AudioTrainingConfig,
    dataset: Dataset,
    split: RecordingSplit,
    blocks: _SideBlocks,
    trained: _Trained,
    features: LogMelSettings,
    decisions: tuple[GammaThreshold, GammaThreshold],
) -> AudioManifest:
    labelled = [r for r in split.seen if r.is_anomaly]
    stage2 = trained.stage2
    return AudioManifest(
        name=_bundle_name(config),
        version=config.version,
        created_at=datetime.now(UTC),
        description=config.description
        or (
            f"Weakly supervised autoencoder ({config.backbone} backbone) for "
            f"{dataset.machine_type}, {len(labelled)} labelled anomalous recordings"
        ),
        training=TrainingData(
            data=config.data_description or dataset.describe(),
            n_normal=blocks.train_normal.n_clips,
            n_anomaly=blocks.train_anomalous.n_clips if stage2 else 0,
            clip_seconds=config.clip_seconds,
            seed=config.seed,
            layout=dataset.layout,
            normal_recordings=sum(not r.is_anomaly for r in split.train),
            anomaly_recordings=len(labelled),
            train_hop_frames=blocks.train_normal.hop_frames,
            stage2_loss=config.loss if stage2 else None,
            stage1_epochs=trained.stage1.best_epoch,
            stage2_epochs=stage2.best_epoch if stage2 else None,
        ),
        machine_type=dataset.machine_type,
        backbone=config.backbone,
        features=features,
        training_margin=trained.margin,
        clip_decision=decisions[0],
        block_decision=decisions[1],
    )


def _publish(partial: Path, out: Path) -> None:
    """Move the finished bundle into --out, the manifest last, so that a registry watching the
    folder never sees a manifest without its model."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (SPLIT_FILE, MODEL_FILE, MANIFEST_FILE):
        os.replace(partial / name, out / name)


def train_audio_bundle(config: AudioTrainingConfig) -> AudioTrainingResult:
    """Train, export, threshold and evaluate one bundle; every random choice follows
    `config.seed`. The bundle is built in a hidden folder beside --out and moved in at the end."""
    started = time.perf_counter()
    _bundle_name(config)  # refuse a bad name before any work
    out = Path(config.out)
    _check_out(out, config.overwrite)
    dataset = open_dataset(config.data, config.machine_type)
    split = split_recordings(dataset, config.labeled_anomalies, config.fractions, config.seed)
    recipe = backbone_recipe(config.backbone, config.sample_rate)
    extractor = LogMelExtractor(recipe.features)
    blocks = _read_blocks(
        config, split, extractor, config.train_hop_frames or recipe.train_hop_frames
    )
    trained = _train(config, blocks, recipe.features)

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        model_path = export_onnx(trained.scorer, partial / MODEL_FILE)
        decisions = _decisions(
            model_path,
            blocks.threshold_normal,
            config.decision_r if config.decision_r is not None else config.r,
            sum(not r.is_anomaly for r in split.threshold),
        )
        manifest = _manifest(config, dataset, split, blocks, trained, recipe.features, decisions)
        write_manifest(partial, manifest)
        write_split_file(partial, split, dataset, config.seed)
        report = evaluate_scores(
            score_recordings(load_bundle(partial), split.test, config.clip_seconds),
            dataset.layout,
            manifest.clip_decision.threshold,
        )
        n_test_normal = sum(not r.is_anomaly for r in split.test)
        manifest = manifest.model_copy(
            update={
                "evaluation": report.as_manifest(
                    f"held-out test recordings of {dataset.machine_type} ({n_test_normal} "
                    f"normal, {len(split.test) - n_test_normal} anomalous), never used for "
                    "training, early stopping or thresholds"
                )
            }
        )
        write_manifest(partial, manifest)
        _publish(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return AudioTrainingResult(
        bundle_dir=out,
        manifest=manifest,
        dataset=dataset,
        split=split,
        stage1=trained.stage1,
        stage2=trained.stage2,
        evaluation=report,
        seconds=time.perf_counter() - started,
    )

"""From the served bundle and operators' labels to the next version, or to a refusal: fine-tune
with stage 2, compare challenger and champion on labelled events neither fold model trained on
and on held-out normal recordings, and write the challenger beside the champion only if the
promotion rule lets it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from sklearn.metrics import roc_auc_score

from service.bundle.manifest import (
    MODEL_FILE,
    AudioManifest,
    EpochLoss,
    Evaluation,
    Lineage,
    TrainingHistory,
    write_history,
    write_manifest,
)
from service.features.logmel import LogMelExtractor
from training.audio.blocks import BlockSet, recording_blocks
from training.audio.datasets import Recording
from training.audio.export import export_onnx, export_torch, load_torch
from training.audio.losses import CONTRASTIVE_LOSSES, ContrastiveLoss
from training.audio.model import BlockScorer
from training.audio.operating_points import (
    BUDGET_POINT,
    FittedThresholds,
    ThresholdScores,
    fit_thresholds,
)
from training.audio.pipeline import TRAIN_BLOCK_BYTES
from training.audio.splits import SPLIT_FILE
from training.audio.stages import FitReport, FitSettings, block_scores
from training.retrain.champion import RetrainError, next_version, served_bundle
from training.retrain.finetune import fine_tune
from training.retrain.labels import LabelledClip
from training.retrain.normal_data import BundleRecordings, bundle_recordings, halves
from training.retrain.promotion import SIGNIFICANCE, Decision, FoldScores, decide

logger = logging.getLogger(__name__)

# Folds by event: each fine-tunes once more, so a few keep retraining minutes long on 2 cores.
MAX_FOLDS = 3
DECISION_LOG = ".retrain-decisions.jsonl"


@dataclass(frozen=True)
class RetrainConfig:
    models: Path
    model: str
    # Where the bundle's normal recordings now live; None: the folder its split.json names.
    data: Path | None = None
    # Fewer events labelled 'anomaly' than this and retraining refuses to run (at least 2: one
    # to train a fold model, one to check it).
    min_anomalies: int = 3
    max_folds: int = MAX_FOLDS
    stage2: FitSettings = field(default_factory=lambda: FitSettings(max_epochs=50, patience=10))
    # Share of normal clips the challenger may flag; None: the champion's false_alarm_rate
    # operating point's target, else 1 - its Gamma r.
    false_alarm_budget: float | None = None
    significance: float = SIGNIFICANCE
    seed: int = 0
    threads: int = 1
    # Replaces the normal recordings found from split.json (benchmarks keep their own
    # evaluation recordings out of every check).
    recordings: BundleRecordings | None = None
    # Every decision is appended here as one JSON line; None: MODELS/.retrain-decisions.jsonl.
    decision_log: Path | None = None


@dataclass(frozen=True)
class RetrainResult:
    champion_dir: Path
    champion_version: str
    challenger_version: str
    decision: Decision
    # The new bundle's folder and manifest; None when the challenger was refused.
    bundle_dir: Path | None
    manifest: AudioManifest | None
    anomaly_events: int
    normal_events: int
    folds: int
    notes: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class _Blocks:
    train_normal: BlockSet
    validation_normal: BlockSet
    fit_normal: BlockSet  # held-out half: the challenger's thresholds
    check_normal: BlockSet  # held-out half: false alarms and the AUC's normal side
    check_anomalous: BlockSet  # the data's anomalous test recordings (often none)
    events_train: BlockSet  # one clip per kept event, at the training hop
    events_served: BlockSet  # the same at the served hop


def _budget(manifest: AudioManifest, budget: float | None) -> float:
    if budget is not None:
        return budget
    point = manifest.operating_point()
    if point is not None and point.rule == "false_alarm_rate":
        return point.target
    return 1.0 - manifest.clip_decision.r


def _loss(manifest: AudioManifest) -> ContrastiveLoss:
    """The champion's stage-2 loss; the paper's hinge for a stage-1 bundle."""
    for loss in CONTRASTIVE_LOSSES:
        if loss == manifest.training.stage2_loss:
            return loss
    return "hinge"


def _check_labels(clips: Sequence[LabelledClip], config: RetrainConfig) -> None:
    needed = max(2, config.min_anomalies)
    anomalies = sum(c.is_anomaly for c in clips)
    if anomalies < needed:
        raise RetrainError(
            f"model {config.model!r} has {anomalies} event(s) labelled 'anomaly' and "
            f"{len(clips) - anomalies} labelled 'normal' with audio; retraining needs at least "
            f"{needed} confirmed anomalies: label more alarms (the review page /ui/review, or "
            "PUT /v1/events/{id}/label)"
        )


def _read_blocks(
    manifest: AudioManifest,
    normal: BundleRecordings,
    clips: Sequence[LabelledClip],
    seed: int,
) -> tuple[_Blocks, list[LabelledClip], list[str]]:
    """Every block the retraining uses, and the events kept (those whose audio gives a block)."""
    extractor = LogMelExtractor(manifest.features)
    clip_seconds = manifest.training.clip_seconds
    train_hop = manifest.training.train_hop_frames or manifest.features.block_hop_frames
    max_blocks = TRAIN_BLOCK_BYTES // (4 * manifest.features.block_size)
    notes = []
    if normal.missing:
        notes.append(
            f"{normal.missing} normal recording(s) the bundle's split.json lists are no longer "
            f"at {normal.data}; retraining uses the others"
        )
    reachable = [c for c in clips if c.audio_path.is_file()]
    if len(reachable) < len(clips):
        notes.append(f"{len(clips) - len(reachable)} labelled event(s) have no audio left")
    events = [Recording(c.audio_path, f"event/{c.event_id}", c.label, "events") for c in reachable]
    events_served = recording_blocks(events, extractor, None)
    kept_index = np.unique(events_served.recording_of_clip)
    if kept_index.size < len(events):
        notes.append(f"{len(events) - kept_index.size} event clip(s) too short for one block")
    kept = [reachable[i] for i in kept_index]
    kept_events = [events[i] for i in kept_index]
    fit_half, check_half = halves(normal.held_out, seed)
    blocks = _Blocks(
        train_normal=recording_blocks(normal.train, extractor, clip_seconds, train_hop, max_blocks),
        validation_normal=recording_blocks(normal.validation, extractor, clip_seconds),
        fit_normal=recording_blocks(fit_half, extractor, clip_seconds),
        check_normal=recording_blocks(check_half, extractor, clip_seconds),
        check_anomalous=recording_blocks(normal.held_out_anomalous, extractor, clip_seconds),
        events_train=recording_blocks(kept_events, extractor, None, train_hop),
        events_served=recording_blocks(kept_events, extractor, None),
    )
    for side in ("train_normal", "validation_normal", "check_normal"):
        if getattr(blocks, side).n_clips == 0:
            raise RetrainError(f"the {side.replace('_', ' ')} recordings give no block")
    if blocks.fit_normal.n_clips < 2:
        raise RetrainError(
            f"the held-out normal recordings for the thresholds give {blocks.fit_normal.n_clips} "
            "clip(s); a Gamma fit needs at least 2"
        )
    return blocks, kept, notes


def _event_folds(clips: Sequence[LabelledClip], k: int, seed: int) -> np.ndarray:
    """The fold of each event: anomalies and normal events each dealt in turn after a seeded
    shuffle, so every fold holds at least one anomaly."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(clips), dtype=np.int64)
    for anomalous in (True, False):
        members = np.flatnonzero([c.is_anomaly == anomalous for c in clips])
        fold_of[rng.permutation(members)] = np.arange(members.size) % k
    return fold_of


def _training_sets(
    blocks: _Blocks, clips: Sequence[LabelledClip], use: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(normal, anomalous) training blocks: the bundle's normal training blocks plus the events
    labelled normal among `use` (indices), and the events labelled anomaly among them."""
    is_anomaly = np.array([c.is_anomaly for c in clips])
    normal_events = blocks.events_train.of_recordings(use[~is_anomaly[use]]).blocks
    anomalous = blocks.events_train.of_recordings(use[is_anomaly[use]]).blocks
    return np.concatenate([blocks.train_normal.blocks, normal_events]), anomalous


def _clip_scores(scorer: BlockScorer, blocks: BlockSet) -> np.ndarray:
    return blocks.clip_means(block_scores(scorer, blocks.blocks))


def _fold_scores(
    scorer: BlockScorer, blocks: _Blocks, clips: Sequence[LabelledClip], held: np.ndarray
) -> FoldScores:
    """The held-out events' clip scores and the check clips' scores by one model."""
    is_anomaly = np.array([c.is_anomaly for c in clips])
    events = blocks.events_served.of_recordings(held)
    scores = _clip_scores(scorer, events)
    anomalous = is_anomaly[events.recording_of_clip]
    return FoldScores(
        anomalous=scores[anomalous],
        normal_events=scores[~anomalous],
        normal_data=_clip_scores(scorer, blocks.check_normal),
    )


def _onnx_clip_scores(model_path: Path, blocks: BlockSet) -> tuple[np.ndarray, np.ndarray]:
    """(block, clip) scores through an exported graph, as the service computes them."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    block = np.concatenate(
        [
            session.run(["score"], {"blocks": blocks.blocks[start : start + 4096]})[0]
            for start in range(0, len(blocks.blocks), 4096)
        ]
    ).astype(np.float64)
    return block, blocks.clip_means(block)


def _data_auc(model_path: Path, blocks: _Blocks, normal_scores: np.ndarray) -> float:
    """ROC-AUC of the data's anomalous test clips against the check normal clips."""
    _, anomalous = _onnx_clip_scores(model_path, blocks.check_anomalous)
    y = np.r_[np.ones(anomalous.size), np.zeros(normal_scores.size)]
    return float(roc_auc_score(y, np.r_[anomalous, normal_scores]))


def _history(report: FitReport) -> TrainingHistory:
    return TrainingHistory(
        stages={
            "stage2": [
                EpochLoss(epoch=i + 1, train_loss=train, validation_loss=validation)
                for i, (train, validation) in enumerate(
                    zip(report.train_losses, report.validation_losses, strict=True)
                )
            ]
        },
        best_epoch={"stage2": report.best_epoch},
    )


def _log_decision(config: RetrainConfig, record: dict[str, object]) -> None:
    path = config.decision_log or Path(config.models) / DECISION_LOG
    with path.open("a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")


def retrain_bundle(config: RetrainConfig, clips: Sequence[LabelledClip]) -> RetrainResult:
    """Fine-tune the served bundle of `config.model` on `clips`, decide, and write the next
    version into `config.models` when promoted. Raises RetrainError when it cannot run."""
    started = time.perf_counter()
    if config.threads < 1:
        raise ValueError(f"threads must be at least 1, got {config.threads}")
    torch.set_num_threads(config.threads)
    champion_dir, manifest = served_bundle(config.models, config.model)
    version = next_version(manifest.version)
    out = Path(config.models) / f"{manifest.name}-v{version}"
    if out.exists():
        raise RetrainError(f"{out} already exists; remove it or retrain from another version")
    _check_labels(clips, config)
    champion = load_torch(champion_dir)
    normal = config.recordings or bundle_recordings(champion_dir, config.data)
    blocks, kept, notes = _read_blocks(manifest, normal, clips, config.seed)
    _check_labels(kept, config)
    margin = manifest.training_margin.threshold
    loss = _loss(manifest)
    quiet = replace(config.stage2, quiet=True)

    anomalies = sum(c.is_anomaly for c in kept)
    k = min(config.max_folds, anomalies)
    fold_of = _event_folds(kept, k, config.seed)
    challenger_folds, champion_folds = [], []
    for fold in range(k):
        normal_blocks, anomalous = _training_sets(blocks, kept, np.flatnonzero(fold_of != fold))
        model, _ = fine_tune(
            champion,
            normal_blocks,
            blocks.validation_normal.blocks,
            anomalous,
            margin,
            loss,
            quiet,
            config.seed * 1009 + fold + 1,
        )
        held = np.flatnonzero(fold_of == fold)
        challenger_folds.append(_fold_scores(model, blocks, kept, held))
        champion_folds.append(_fold_scores(champion, blocks, kept, held))

    normal_blocks, anomalous = _training_sets(blocks, kept, np.arange(len(kept)))
    final, report = fine_tune(
        champion,
        normal_blocks,
        blocks.validation_normal.blocks,
        anomalous,
        margin,
        loss,
        config.stage2,
        config.seed,
    )
    budget = _budget(manifest, config.false_alarm_budget)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=config.models))
    try:
        model_path = export_onnx(final, partial / MODEL_FILE)
        export_torch(final, partial)
        fit_block, fit_clip = _onnx_clip_scores(model_path, blocks.fit_normal)
        fitted = fit_thresholds(
            ThresholdScores(
                method="held_out",
                folds=None,
                recording_ids=(),
                clip=fit_clip,
                clip_recording=blocks.fit_normal.recording_of_clip,
                block=fit_block,
                block_recording=blocks.fit_normal.recording_of_block,
            ),
            manifest.clip_decision.r,
            budget,
        )
        challenger_threshold = next(
            p.thresholds["clip"] for p in fitted.points if p.name == fitted.default_point
        )
        _, challenger_check = _onnx_clip_scores(model_path, blocks.check_normal)
        _, champion_check = _onnx_clip_scores(champion_dir / MODEL_FILE, blocks.check_normal)
        test_recordings_auc = None
        if blocks.check_anomalous.n_clips:
            test_recordings_auc = (
                _data_auc(model_path, blocks, challenger_check),
                _data_auc(champion_dir / MODEL_FILE, blocks, champion_check),
            )
        decision = decide(
            challenger_folds,
            champion_folds,
            int(np.sum(challenger_check > challenger_threshold)),
            int(np.sum(champion_check > manifest.thresholds()[0])),
            blocks.check_normal.n_clips,
            budget,
            config.significance,
            test_recordings_auc,
        )
        n_normal_events = len(kept) - anomalies
        decision.figures.update(
            anomaly_events=float(anomalies), normal_events=float(n_normal_events), folds=float(k)
        )
        new_manifest = None
        if decision.promoted:
            lineage = Lineage(
                parent_version=manifest.version,
                anomaly_events=[c.event_id for c in kept if c.is_anomaly],
                normal_events=[c.event_id for c in kept if not c.is_anomaly],
                decision=decision.reason,
                figures=decision.figures,
            )
            new_manifest = _challenger_manifest(
                manifest, version, fitted, report, lineage, blocks, decision, config.seed
            )
            write_manifest(partial, new_manifest)
            write_history(partial, _history(report))
            shutil.copyfile(champion_dir / SPLIT_FILE, partial / SPLIT_FILE)
            # One rename of the whole folder: the registry ignores '.' folders, so it never
            # sees a manifest without its model.
            os.rename(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    logger.info(
        "retrain %s %s -> %s: %s", manifest.name, manifest.version, version, decision.reason
    )
    _log_decision(
        config,
        {
            "time": datetime.now(UTC).isoformat(),
            "model": manifest.name,
            "champion_version": manifest.version,
            "challenger_version": version,
            "promoted": decision.promoted,
            "reason": decision.reason,
            "figures": decision.figures,
            "bundle": out.name if decision.promoted else None,
            "notes": notes,
        },
    )
    return RetrainResult(
        champion_dir=champion_dir,
        champion_version=manifest.version,
        challenger_version=version,
        decision=decision,
        bundle_dir=out if decision.promoted else None,
        manifest=new_manifest,
        anomaly_events=anomalies,
        normal_events=len(kept) - anomalies,
        folds=k,
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
    )


def _challenger_manifest(
    champion: AudioManifest,
    version: str,
    fitted: FittedThresholds,
    report: FitReport,
    lineage: Lineage,
    blocks: _Blocks,
    decision: Decision,
    seed: int,
) -> AudioManifest:
    n_anomaly = len(lineage.anomaly_events)
    n_normal = len(lineage.normal_events)
    check = blocks.check_normal.n_clips
    figures = decision.figures
    update = {
        "version": version,
        "created_at": datetime.now(UTC),
        "description": (
            f"{champion.name} {version}: version {champion.version} fine-tuned (stage 2) on "
            f"{n_anomaly} confirmed anomalies and {n_normal} false alarms labelled by operators"
        ),
        "training": champion.training.model_copy(
            update={
                "n_normal": blocks.train_normal.n_clips + n_normal,
                "n_anomaly": n_anomaly,
                "seed": seed,
                "stage2_loss": _loss(champion),
                "stage2_epochs": report.best_epoch,
            }
        ),
        "clip_decision": fitted.clip_decision,
        "block_decision": fitted.block_decision,
        "operating_points": list(fitted.points),
        "default_operating_point": fitted.default_point,
        "evaluation": Evaluation(
            data=(
                f"{check} clips of held-out normal recordings and {n_anomaly + n_normal} "
                f"labelled events in {int(figures['folds'])} folds by event, none trained on by "
                "the model that scored it; AUC is the mean over folds; verdicts at operating "
                f"point {BUDGET_POINT!r}"
            ),
            n_normal=check + n_normal,
            n_anomaly=n_anomaly,
            auc=figures["challenger_auc"],
            false_alarm_rate=figures["challenger_false_alarm_rate"],
            extra={
                "champion_auc": figures["champion_auc"],
                "champion_false_alarm_rate": figures["champion_false_alarm_rate"],
            },
        ),
        "lineage": lineage,
    }
    return AudioManifest.model_validate({**champion.model_dump(), **update})

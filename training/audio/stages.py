"""The two training stages with Adam and early stopping: stage 1 reconstructs normal blocks,
stage 2 adds the labelled anomalies with the contrastive loss in balanced mini-batches."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from service.bundle.manifest import GammaThreshold
from training.audio.losses import ContrastiveLoss, contrastive_loss
from training.audio.model import BlockScore, BlockScorer
from training.thresholds import gamma_threshold

SCORING_BATCH = 4096


@dataclass(frozen=True)
class FitSettings:
    max_epochs: int = 100
    # Epochs without a better validation loss before training stops (the best epoch is kept).
    patience: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.patience < 1 or self.batch_size < 2:
            raise ValueError("max_epochs and patience must be at least 1, batch_size at least 2")
        if not self.learning_rate > 0:
            raise ValueError(f"the learning rate must be positive, got {self.learning_rate}")


@dataclass(frozen=True)
class FitReport:
    epochs: int
    best_epoch: int
    best_validation_loss: float
    train_losses: tuple[float, ...]
    validation_losses: tuple[float, ...]


def _per_block(
    scorer: BlockScorer, blocks: np.ndarray, value: Callable[[torch.Tensor], torch.Tensor]
) -> np.ndarray:
    scorer.eval()
    out = np.empty(len(blocks), dtype=np.float64)
    with torch.no_grad():
        for start in range(0, len(blocks), SCORING_BATCH):
            chunk = torch.from_numpy(np.ascontiguousarray(blocks[start : start + SCORING_BATCH]))
            out[start : start + len(chunk)] = value(chunk).double().numpy()
    return out


def block_scores(scorer: BlockScorer, blocks: np.ndarray) -> np.ndarray:
    """The served scores of blocks [N, D] as float64, without gradients."""
    return _per_block(scorer, blocks, lambda chunk: scorer(chunk)[0])


def reconstruction_errors(scorer: BlockScorer, blocks: np.ndarray) -> np.ndarray:
    """The reconstruction errors (the paper's s(x), what training minimises) of blocks [N, D]."""
    return _per_block(scorer, blocks, scorer.reconstruction_error)


def fit_with_early_stopping(
    scorer: BlockScorer,
    settings: FitSettings,
    label: str,
    run_epoch: Callable[[], float],
    validation_loss: Callable[[], float],
) -> FitReport:
    """Run epochs until the validation loss has not improved for `patience` epochs, then keep
    the weights of the best epoch."""
    best_loss, best_epoch = math.inf, 0
    best_state = copy.deepcopy(scorer.state_dict())
    train_losses: list[float] = []
    validation_losses: list[float] = []
    progress = tqdm(
        range(1, settings.max_epochs + 1), desc=label, disable=settings.quiet, leave=False
    )
    for epoch in progress:
        scorer.train()
        train_losses.append(run_epoch())
        validation_losses.append(validation_loss())
        progress.set_postfix(loss=f"{train_losses[-1]:.4g}", val=f"{validation_losses[-1]:.4g}")
        if validation_losses[-1] < best_loss:
            best_loss, best_epoch = validation_losses[-1], epoch
            best_state = copy.deepcopy(scorer.state_dict())
        elif epoch - best_epoch >= settings.patience:
            break
    progress.close()
    scorer.load_state_dict(best_state)
    scorer.eval()
    return FitReport(
        epochs=len(train_losses),
        best_epoch=best_epoch,
        best_validation_loss=best_loss,
        train_losses=tuple(train_losses),
        validation_losses=tuple(validation_losses),
    )


def as_tensor(blocks: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(blocks, dtype=np.float32))


def train_stage1(
    scorer: BlockScorer,
    train_blocks: np.ndarray,
    validation_blocks: np.ndarray,
    settings: FitSettings,
    generator: torch.Generator,
) -> FitReport:
    """Minimise the mean block score (the reconstruction error) of normal blocks."""
    if len(train_blocks) == 0 or len(validation_blocks) == 0:
        raise ValueError("stage 1 needs normal training and validation blocks")
    x = as_tensor(train_blocks)
    optimizer = torch.optim.Adam(scorer.parameters(), lr=settings.learning_rate)

    def run_epoch() -> float:
        total = 0.0
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), settings.batch_size):
            batch = x[order[start : start + settings.batch_size]]
            loss = scorer.reconstruction_error(batch).mean()
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
            total += loss.item() * len(batch)
        return total / len(x)

    def validation_loss() -> float:
        return float(reconstruction_errors(scorer, validation_blocks).mean())

    return fit_with_early_stopping(scorer, settings, "stage 1", run_epoch, validation_loss)


def train_stage2(
    scorer: BlockScorer,
    normal_blocks: np.ndarray,
    anomaly_blocks: np.ndarray,
    validation_normal: np.ndarray,
    validation_anomaly: np.ndarray,
    margin: float,
    loss_kind: ContrastiveLoss,
    settings: FitSettings,
    generator: torch.Generator,
) -> FitReport:
    """Continue from stage 1 with the contrastive loss. Each mini-batch holds as many anomalous
    blocks as normal ones, the anomalies drawn with replacement; an epoch is one pass over the
    normal blocks. Without validation anomalies, the labelled training anomalies stand in for
    them in the validation loss."""
    if len(normal_blocks) == 0 or len(anomaly_blocks) == 0 or len(validation_normal) == 0:
        raise ValueError("stage 2 needs normal and anomalous training blocks and normal validation")
    normal = as_tensor(normal_blocks)
    anomalous = as_tensor(anomaly_blocks)
    half = settings.batch_size // 2
    labels = torch.cat([torch.ones(half), torch.zeros(half)])
    optimizer = torch.optim.Adam(scorer.parameters(), lr=settings.learning_rate)
    checked_anomalies = validation_anomaly if len(validation_anomaly) else anomaly_blocks

    def run_epoch() -> float:
        total, batches = 0.0, 0
        order = torch.randperm(len(normal), generator=generator)
        for start in range(0, len(normal), half):
            picked = order[start : start + half]
            drawn = torch.randint(len(anomalous), (len(picked),), generator=generator)
            batch = torch.cat([normal[picked], anomalous[drawn]])
            y = torch.cat([labels[: len(picked)], labels[half : half + len(picked)]])
            loss = contrastive_loss(scorer.reconstruction_error(batch), y, margin, loss_kind)
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        return total / batches

    def validation_loss() -> float:
        normal_scores = torch.from_numpy(reconstruction_errors(scorer, validation_normal))
        anomaly_scores = torch.from_numpy(reconstruction_errors(scorer, checked_anomalies))
        # Each side weighs half, as in the balanced training batches.
        normal_part = contrastive_loss(
            normal_scores, torch.ones(len(normal_scores)), margin, loss_kind
        )
        anomaly_part = contrastive_loss(
            anomaly_scores, torch.zeros(len(anomaly_scores)), margin, loss_kind
        )
        return float(normal_part + anomaly_part) / 2

    report = fit_with_early_stopping(scorer, settings, "stage 2", run_epoch, validation_loss)
    if scorer.score == "latent_knn":
        # The codes moved with the weights: the bank must hold the new codes of normal blocks
        # (this also keeps a model fine-tuned by `auscult retrain` consistent).
        seed = int(torch.randint(1 << 31, (1,), generator=generator))
        scorer.set_memory_bank(normal_blocks, seed)
    return report


@dataclass(frozen=True)
class TrainingBlocks:
    """What the two stages train and early-stop on."""

    train_normal: np.ndarray
    validation_normal: np.ndarray
    train_anomalous: np.ndarray
    validation_anomalous: np.ndarray


@dataclass(frozen=True)
class TrainedModel:
    scorer: BlockScorer
    stage1: FitReport
    margin: GammaThreshold
    stage2: FitReport | None


@dataclass(frozen=True)
class Stage1Model:
    """Stage 1 trained, with what stage 2 continues from: its reconstruction errors of the
    training normal blocks (where the margin is fitted) and the random state it left, so that
    stages 2 of several margins all start from the same point."""

    scorer: BlockScorer
    report: FitReport
    train_errors: np.ndarray
    generator_state: torch.Tensor
    seed: int


def train_stage1_model(
    blocks: TrainingBlocks,
    n_mels: int,
    frames_per_block: int,
    stage1: FitSettings,
    seed: int,
    score: BlockScore = "reconstruction",
) -> Stage1Model:
    """Stage 1 of `train_two_stages`, kept apart so that one stage 1 serves several margins."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    scorer = BlockScorer(n_mels, frames_per_block, score)
    normal = blocks.train_normal
    scorer.set_standardisation(normal)
    report = train_stage1(scorer, normal, blocks.validation_normal, stage1, generator)
    return Stage1Model(
        scorer, report, reconstruction_errors(scorer, normal), generator.get_state(), seed
    )


def continue_with_stage2(
    stage1: Stage1Model,
    blocks: TrainingBlocks,
    r: float,
    loss_kind: ContrastiveLoss,
    stage2: FitSettings | None,
) -> TrainedModel:
    """The margin a (Gamma at r on stage 1's training errors), then stage 2 when `stage2` is
    given and anomalous blocks are labelled, on a copy of stage 1's model: `stage1` is left as
    it was, for the next margin."""
    normal = blocks.train_normal
    margin = gamma_threshold(
        stage1.train_errors,
        r,
        f"stage-1 reconstruction errors of {len(normal)} training normal blocks",
    )
    scorer = copy.deepcopy(stage1.scorer)
    generator = torch.Generator()
    generator.set_state(stage1.generator_state)
    report2 = None
    if stage2 is not None and len(blocks.train_anomalous):
        report2 = train_stage2(
            scorer,
            normal,
            blocks.train_anomalous,
            blocks.validation_normal,
            blocks.validation_anomalous,
            margin.threshold,
            loss_kind,
            stage2,
            generator,
        )
    if scorer.score == "latent_knn":
        scorer.set_memory_bank(normal, stage1.seed)
    return TrainedModel(scorer, stage1.report, margin, report2)


def train_two_stages(
    blocks: TrainingBlocks,
    n_mels: int,
    frames_per_block: int,
    r: float,
    loss_kind: ContrastiveLoss,
    stage1: FitSettings,
    stage2: FitSettings | None,
    seed: int,
    score: BlockScore = "reconstruction",
) -> TrainedModel:
    """Stage 1, the margin a (Gamma at r on stage 1's reconstruction errors of the training
    normal blocks), then stage 2 when `stage2` is given and anomalous blocks are labelled. The
    model serves `score` of its errors."""
    first = train_stage1_model(blocks, n_mels, frames_per_block, stage1, seed, score)
    return continue_with_stage2(first, blocks, r, loss_kind, stage2)

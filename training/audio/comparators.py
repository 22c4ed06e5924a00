"""The detectors the paper compares against (its table 3 and section 2), on the same blocks,
standardisation and early stopping as the autoencoder and exported the same way: USAD, Deep SVDD
and DevNet. Each is a BlockScorer whose served score replaces the reconstruction error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import nn

from training.audio.model import LATENT_UNITS, Autoencoder, BlockScorer
from training.audio.stages import (
    FitReport,
    FitSettings,
    TrainedModel,
    TrainingBlocks,
    as_tensor,
    block_scores,
    fit_with_early_stopping,
    train_stage1,
)
from training.thresholds import gamma_threshold

Comparator = Literal["usad", "deep_svdd", "devnet"]
COMPARATORS: tuple[Comparator, ...] = ("usad", "deep_svdd", "devnet")
# USAD's score weights (alpha, beta); the paper's defaults weigh both decoders alike.
USAD_WEIGHTS = (0.5, 0.5)
# DevNet: the deviation an anomaly must reach (its paper's a = 5), against a N(0, 1) prior.
DEVNET_MARGIN = 5.0
# Deep SVDD keeps centre coordinates this far from 0, where a ReLU code could sit for free.
SVDD_MIN_CENTRE = 0.1


def _decoder(size: int) -> nn.Sequential:
    """A decoder like the autoencoder's own: 8 -> 4 x FC128 -> output."""
    autoencoder = Autoencoder(size)
    return nn.Sequential(*list(autoencoder.layers)[autoencoder.encoder_modules :])


class UsadScorer(BlockScorer):
    """USAD (Audibert et al., KDD 2020): one encoder, two decoders trained adversarially; the
    score is alpha * |w - AE1(w)|^2 + beta * |w - AE2(AE1(w))|^2 per band, then averaged."""

    def __init__(self, n_mels: int, frames_per_block: int) -> None:
        super().__init__(n_mels, frames_per_block)
        self.decoder2 = _decoder(n_mels * frames_per_block)

    def _bands(self, squared: torch.Tensor) -> torch.Tensor:
        return squared.reshape(-1, self.n_mels, self.frames_per_block).mean(dim=2)

    def reconstructions(
        self, blocks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(standardised w, AE1(w), AE2(w), AE2(AE1(w)))."""
        w = (blocks - self.mean) / self.std
        ae1 = self.autoencoder.decode(self.autoencoder.encode(w))
        ae2 = self.decoder2(self.autoencoder.encode(w))
        ae2_of_ae1 = self.decoder2(self.autoencoder.encode(ae1))
        return w, ae1, ae2, ae2_of_ae1

    def forward(self, blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w, ae1, _, ae2_of_ae1 = self.reconstructions(blocks)
        alpha, beta = USAD_WEIGHTS
        band_error = alpha * self._bands((w - ae1) ** 2) + beta * self._bands((w - ae2_of_ae1) ** 2)
        return band_error.mean(dim=1), band_error


class SvddScorer(BlockScorer):
    """Deep SVDD (Ruff et al., ICML 2018), one-class: the encoder of a pretrained autoencoder,
    trained to pull normal codes to a centre c; score = |E(x) - c|^2. It has no per-band error:
    band_error is zero."""

    centre: torch.Tensor

    def __init__(self, n_mels: int, frames_per_block: int) -> None:
        super().__init__(n_mels, frames_per_block)
        self.register_buffer("centre", torch.zeros(LATENT_UNITS))

    def forward(self, blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.autoencoder.encode((blocks - self.mean) / self.std)
        score = ((code - self.centre) ** 2).sum(dim=1)
        return score, code.new_zeros((code.shape[0], self.n_mels))


class DevNetScorer(BlockScorer):
    """DevNet (Pang et al., KDD 2019): an end-to-end scoring network (the encoder's layers,
    then one linear unit) trained with the deviation loss on normal blocks and the labelled
    anomalies. Served as softplus(phi(x)), which keeps its order and is positive, as the Gamma
    thresholds need. No per-band error: band_error is zero."""

    def __init__(self, n_mels: int, frames_per_block: int) -> None:
        super().__init__(n_mels, frames_per_block)
        self.head = nn.Linear(LATENT_UNITS, 1)

    def raw_score(self, blocks: torch.Tensor) -> torch.Tensor:
        code = self.autoencoder.encode((blocks - self.mean) / self.std)
        out: torch.Tensor = self.head(code).squeeze(1)
        return out

    def forward(self, blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score = nn.functional.softplus(self.raw_score(blocks))
        return score, score.new_zeros((score.shape[0], self.n_mels))


def _mean_score(scorer: BlockScorer, blocks: np.ndarray) -> Callable[[], float]:
    return lambda: float(block_scores(scorer, blocks).mean())


def train_usad(
    n_mels: int,
    frames_per_block: int,
    normal: np.ndarray,
    validation: np.ndarray,
    settings: FitSettings,
    generator: torch.Generator,
) -> tuple[UsadScorer, FitReport]:
    """USAD's two-phase training: at epoch n, AE1 minimises 1/n |w-AE1|^2 + (1-1/n) |w-AE2(AE1)|^2
    and AE2 minimises 1/n |w-AE2|^2 - (1-1/n) |w-AE2(AE1)|^2 (both through the shared encoder)."""
    scorer = UsadScorer(n_mels, frames_per_block)
    scorer.set_standardisation(normal)
    x = as_tensor(normal)
    encoder_decoder1 = list(scorer.autoencoder.parameters())
    optimiser1 = torch.optim.Adam(encoder_decoder1, lr=settings.learning_rate)
    optimiser2 = torch.optim.Adam(
        [*scorer.autoencoder.parameters(), *scorer.decoder2.parameters()],
        lr=settings.learning_rate,
    )
    epoch = 0

    def run_epoch() -> float:
        nonlocal epoch
        epoch += 1
        share = 1.0 / epoch
        total = 0.0
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), settings.batch_size):
            batch = x[order[start : start + settings.batch_size]]
            w, ae1, _, ae2_of_ae1 = scorer.reconstructions(batch)
            loss1 = share * ((w - ae1) ** 2).mean() + (1 - share) * ((w - ae2_of_ae1) ** 2).mean()
            optimiser1.zero_grad()
            torch.autograd.backward(loss1)
            optimiser1.step()
            w, ae1, ae2, ae2_of_ae1 = scorer.reconstructions(batch)
            loss2 = share * ((w - ae2) ** 2).mean() - (1 - share) * ((w - ae2_of_ae1) ** 2).mean()
            optimiser2.zero_grad()
            torch.autograd.backward(loss2)
            optimiser2.step()
            total += loss1.item() * len(batch)
        return total / len(x)

    report = fit_with_early_stopping(
        scorer, settings, "usad", run_epoch, _mean_score(scorer, validation)
    )
    return scorer, report


def train_deep_svdd(
    n_mels: int,
    frames_per_block: int,
    normal: np.ndarray,
    validation: np.ndarray,
    pretrain: FitSettings,
    settings: FitSettings,
    generator: torch.Generator,
) -> tuple[SvddScorer, FitReport]:
    """Pretrain the autoencoder (stage 1), set c to the mean code of the normal blocks, then
    train the encoder on |E(x) - c|^2. Its biases stay frozen: with free biases the encoder
    could map every block to c (Ruff et al. drop them for that reason)."""
    scorer = SvddScorer(n_mels, frames_per_block)
    scorer.set_standardisation(normal)
    train_stage1(scorer, normal, validation, pretrain, generator)
    x = as_tensor(normal)
    with torch.no_grad():
        codes = scorer.autoencoder.encode((x - scorer.mean) / scorer.std)
        centre = codes.mean(dim=0)
        centre = torch.where(centre.abs() < SVDD_MIN_CENTRE, SVDD_MIN_CENTRE, centre)
        scorer.centre.copy_(centre)
    encoder = scorer.autoencoder.layers[: scorer.autoencoder.encoder_modules]
    weights = [p for name, p in encoder.named_parameters() if name.endswith("weight")]
    optimiser = torch.optim.Adam(weights, lr=settings.learning_rate)

    def run_epoch() -> float:
        total = 0.0
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), settings.batch_size):
            batch = x[order[start : start + settings.batch_size]]
            loss = scorer(batch)[0].mean()
            optimiser.zero_grad()
            torch.autograd.backward(loss)
            optimiser.step()
            total += loss.item() * len(batch)
        return total / len(x)

    report = fit_with_early_stopping(
        scorer, settings, "deep svdd", run_epoch, _mean_score(scorer, validation)
    )
    return scorer, report


def deviation_loss(raw: torch.Tensor, is_anomaly: torch.Tensor) -> torch.Tensor:
    """DevNet's loss with a N(0, 1) reference: normal scores are pulled to the prior's mean,
    anomalies pushed at least DEVNET_MARGIN standard deviations above it."""
    y = is_anomaly.to(raw.dtype)
    return ((1 - y) * raw.abs() + y * torch.relu(DEVNET_MARGIN - raw)).mean()


def train_devnet(
    n_mels: int,
    frames_per_block: int,
    normal: np.ndarray,
    anomalous: np.ndarray,
    validation_normal: np.ndarray,
    validation_anomalous: np.ndarray,
    settings: FitSettings,
    generator: torch.Generator,
) -> tuple[DevNetScorer, FitReport]:
    """Balanced mini-batches as in stage 2 (as many labelled anomalous blocks, drawn with
    replacement, as normal ones); early stopping on the deviation loss of the validation blocks
    (the labelled training anomalies when none validate)."""
    if len(anomalous) == 0:
        raise ValueError("DevNet needs labelled anomalous blocks: set --labeled-anomalies")
    scorer = DevNetScorer(n_mels, frames_per_block)
    scorer.set_standardisation(normal)
    normal_x, anomalous_x = as_tensor(normal), as_tensor(anomalous)
    checked = as_tensor(validation_anomalous if len(validation_anomalous) else anomalous)
    checked_normal = as_tensor(validation_normal)
    half = settings.batch_size // 2
    optimiser = torch.optim.Adam(scorer.parameters(), lr=settings.learning_rate)

    def run_epoch() -> float:
        total, batches = 0.0, 0
        order = torch.randperm(len(normal_x), generator=generator)
        for start in range(0, len(normal_x), half):
            picked = order[start : start + half]
            drawn = torch.randint(len(anomalous_x), (len(picked),), generator=generator)
            batch = torch.cat([normal_x[picked], anomalous_x[drawn]])
            labels = torch.cat([torch.zeros(len(picked)), torch.ones(len(picked))])
            loss = deviation_loss(scorer.raw_score(batch), labels)
            optimiser.zero_grad()
            torch.autograd.backward(loss)
            optimiser.step()
            total, batches = total + loss.item(), batches + 1
        return total / batches

    def validation_loss() -> float:
        with torch.no_grad():
            scorer.eval()
            normal_part = deviation_loss(
                scorer.raw_score(checked_normal), torch.zeros(len(checked_normal))
            )
            anomaly_part = deviation_loss(scorer.raw_score(checked), torch.ones(len(checked)))
        return float(normal_part + anomaly_part) / 2

    report = fit_with_early_stopping(scorer, settings, "devnet", run_epoch, validation_loss)
    return scorer, report


def train_comparator(
    kind: Comparator,
    blocks: TrainingBlocks,
    n_mels: int,
    frames_per_block: int,
    r: float,
    stage1: FitSettings,
    stage2: FitSettings | None,
    seed: int,
) -> TrainedModel:
    """One comparator on the blocks the autoencoder's stages would get; its own report stands
    as stage 1's, and the Gamma at r on its training scores as the training margin."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    normal, validation = blocks.train_normal, blocks.validation_normal
    scorer: BlockScorer
    if kind == "usad":
        scorer, report = train_usad(n_mels, frames_per_block, normal, validation, stage1, generator)
    elif kind == "deep_svdd":
        scorer, report = train_deep_svdd(
            n_mels, frames_per_block, normal, validation, stage1, stage1, generator
        )
    elif kind == "devnet":
        if stage2 is None:
            raise ValueError("DevNet needs labelled anomalous recordings: set --labeled-anomalies")
        scorer, report = train_devnet(
            n_mels,
            frames_per_block,
            normal,
            blocks.train_anomalous,
            validation,
            blocks.validation_anomalous,
            stage1,
            generator,
        )
    else:
        raise ValueError(f"unknown comparator {kind!r}; choose one of {COMPARATORS}")
    margin = gamma_threshold(
        block_scores(scorer, normal), r, f"{kind} scores of {len(normal)} training normal blocks"
    )
    return TrainedModel(scorer, report, margin, None)

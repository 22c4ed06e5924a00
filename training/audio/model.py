"""The paper's fully connected autoencoder and the scoring graph that is exported: standardise a
block, reconstruct it, and report its block score and its mean squared error per mel band."""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import torch
from torch import nn

HIDDEN_UNITS = 128
HIDDEN_LAYERS = 4
LATENT_UNITS = 8
# Features that barely vary in the training data would blow up when standardised.
MIN_STD = 1e-3

# What the served block score is; training always minimises the reconstruction error.
# - reconstruction: the mean squared error over all bands (the paper's s(x)).
# - quiet_bands: the mean over the half of the mel bands that reconstruct best. Another machine
#   heard in the background adds error in the bands it occupies; those drop out of the score,
#   while a fault of the machine itself, which changes many bands, still raises it (a fault
#   confined to a few bands drops out too).
# - latent_knn: the root mean squared distance from the block's latent code to its
#   KNN_NEIGHBOURS nearest codes of training normal blocks (a memory bank kept in the graph;
#   all of them when it holds fewer).
#   Interference moves a block's code less than it moves its reconstruction error.
BlockScore = Literal["reconstruction", "quiet_bands", "latent_knn"]
BLOCK_SCORES: tuple[BlockScore, ...] = ("reconstruction", "quiet_bands", "latent_knn")
KNN_NEIGHBOURS = 5
# Codes kept in the memory bank: 4096 x 8 floats is 128 KiB of graph and a [N, 4096] matmul.
BANK_SIZE = 4096


class Autoencoder(nn.Module):
    """input -> 4 x FC128 -> FC8 -> 4 x FC128 -> output, ReLU after every layer but the last."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        widths = [input_size, *[HIDDEN_UNITS] * HIDDEN_LAYERS, LATENT_UNITS]
        widths += [HIDDEN_UNITS] * HIDDEN_LAYERS
        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(widths):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], input_size))
        self.layers = nn.Sequential(*layers)
        # Linear and ReLU pairs up to and including the latent layer.
        self.encoder_modules = 2 * (HIDDEN_LAYERS + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(x)
        return out

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[N, LATENT_UNITS]: the latent code (after its ReLU)."""
        out: torch.Tensor = self.layers[: self.encoder_modules](x)
        return out

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers[self.encoder_modules :](latent)
        return out


class BlockScorer(nn.Module):
    """blocks [N, n_mels * frames] in dB -> (score [N], band_error [N, n_mels]).

    band_error is the mean squared reconstruction error of the standardised block per mel band,
    so its scale does not depend on the block size; the block score is the one `score` names
    (BlockScore, above)."""

    mean: torch.Tensor
    std: torch.Tensor
    bank: torch.Tensor

    def __init__(
        self, n_mels: int, frames_per_block: int, score: BlockScore = "reconstruction"
    ) -> None:
        super().__init__()
        if score not in BLOCK_SCORES:
            raise ValueError(f"unknown block score {score!r}; choose one of {BLOCK_SCORES}")
        self.n_mels = n_mels
        self.frames_per_block = frames_per_block
        self.score = score
        size = n_mels * frames_per_block
        self.autoencoder = Autoencoder(size)
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("std", torch.ones(size))
        # latent_knn only: codes of training normal blocks, set by set_memory_bank.
        self.register_buffer("bank", torch.zeros(0, LATENT_UNITS))

    def set_standardisation(self, blocks: np.ndarray) -> None:
        """Per-feature mean and standard deviation of the training normal blocks."""
        values = torch.from_numpy(np.asarray(blocks, dtype=np.float64))
        self.mean.copy_(values.mean(dim=0).float())
        self.std.copy_(values.std(dim=0).clamp_min(MIN_STD).float())

    def set_memory_bank(self, blocks: np.ndarray, seed: int) -> None:
        """Keep the latent codes of up to BANK_SIZE of these (training normal) blocks, drawn
        with `seed`, for the latent_knn score."""
        rows = np.arange(len(blocks))
        if rows.size > BANK_SIZE:
            rows = np.sort(np.random.default_rng(seed).choice(rows, BANK_SIZE, replace=False))
        if rows.size == 0:
            raise ValueError("the memory bank needs at least one block")
        chosen = torch.from_numpy(np.ascontiguousarray(blocks[rows], dtype=np.float32))
        with torch.no_grad():
            self.bank = self.autoencoder.encode((chosen - self.mean) / self.std).contiguous()

    def _load_from_state_dict(  # type: ignore[no-untyped-def]
        self, state_dict, prefix, *args, **kwargs
    ) -> None:
        # The bank's size is that of the saved model's, not a fixed one.
        bank = state_dict.get(prefix + "bank")
        if bank is not None:
            self.bank = torch.empty_like(bank)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _errors(self, blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(latent code [N, LATENT_UNITS], band_error [N, n_mels]) of blocks."""
        standard = (blocks - self.mean) / self.std
        latent = self.autoencoder.encode(standard)
        squared = (self.autoencoder.decode(latent) - standard) ** 2
        return latent, squared.reshape(-1, self.n_mels, self.frames_per_block).mean(dim=2)

    def band_error(self, blocks: torch.Tensor) -> torch.Tensor:
        """[N, n_mels]: the squared reconstruction error of the standardised block per band."""
        return self._errors(blocks)[1]

    def reconstruction_error(self, blocks: torch.Tensor) -> torch.Tensor:
        """[N]: the mean squared error over the whole block, what both stages train on."""
        return self.band_error(blocks).mean(dim=1)

    def _knn_distance(self, latent: torch.Tensor) -> torch.Tensor:
        if self.bank.shape[0] == 0:
            raise RuntimeError("latent_knn needs set_memory_bank before scoring")
        # |z - b|^2 = |z|^2 - 2 z.b + |b|^2 by one matmul. In float64: near neighbours make it
        # a small difference of large terms, which float32 would leave 1e-5 off.
        z, bank = latent.double(), self.bank.double()
        squared = (
            (z * z).sum(dim=1, keepdim=True) - 2.0 * z @ bank.T + (bank * bank).sum(dim=1)
        ).clamp_min(0.0)
        # A bank smaller than KNN_NEIGHBOURS (a fold of a tiny data set) uses all its codes.
        k = min(KNN_NEIGHBOURS, int(self.bank.shape[0]))
        nearest = torch.topk(squared, k, dim=1, largest=False).values
        return nearest.mean(dim=1).sqrt().float()

    def forward(self, blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent, band_error = self._errors(blocks)
        if self.score == "quiet_bands":
            kept = torch.topk(band_error, max(1, self.n_mels // 2), dim=1, largest=False).values
            return kept.mean(dim=1), band_error
        if self.score == "latent_knn":
            return self._knn_distance(latent), band_error
        return band_error.mean(dim=1), band_error

"""The paper's fully connected autoencoder and the scoring graph that is exported: standardise a
block, reconstruct it, and report its mean squared error overall and per mel band."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

HIDDEN_UNITS = 128
HIDDEN_LAYERS = 4
LATENT_UNITS = 8
# Features that barely vary in the training data would blow up when standardised.
MIN_STD = 1e-3


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(x)
        return out


class BlockScorer(nn.Module):
    """blocks [N, n_mels * frames] in dB -> (score [N], band_error [N, n_mels]).

    The score is the mean squared reconstruction error of the standardised block, so its scale
    does not depend on the block size; band_error is the same mean taken per mel band."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_mels: int, frames_per_block: int) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.frames_per_block = frames_per_block
        size = n_mels * frames_per_block
        self.autoencoder = Autoencoder(size)
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("std", torch.ones(size))

    def set_standardisation(self, blocks: np.ndarray) -> None:
        """Per-feature mean and standard deviation of the training normal blocks."""
        values = torch.from_numpy(np.asarray(blocks, dtype=np.float64))
        self.mean.copy_(values.mean(dim=0).float())
        self.std.copy_(values.std(dim=0).clamp_min(MIN_STD).float())

    def forward(self, blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        standard = (blocks - self.mean) / self.std
        squared = (self.autoencoder(standard) - standard) ** 2
        band_error = squared.reshape(-1, self.n_mels, self.frames_per_block).mean(dim=2)
        return band_error.mean(dim=1), band_error

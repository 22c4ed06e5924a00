"""What a bundle's graph computes, as torch modules: per-step score [N, window] and per-channel
squared error [N, window, channels] for standardised windows; and scoring whole series with them."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from service.features.windows import reassemble, sliding_windows, window_starts
from training.windows.models.anomaly_transformer import AnomalyTransformer, discrepancy_score
from training.windows.models.ensemble import ScaledEnsemble
from training.windows.pooling import pooled


class ReconstructionScores(nn.Module):
    """Score = mean squared reconstruction error over the channels at each step (pooled)."""

    def __init__(self, model: nn.Module, pooling: str = "step") -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        channel_error = (windows - self.model(windows)) ** 2
        return pooled(channel_error.mean(dim=-1), self.pooling), channel_error


class AnomalyTransformerScores(nn.Module):
    """Score = softmax(-association discrepancy) x mean squared error, as in the reference code
    (pooled)."""

    def __init__(self, model: AnomalyTransformer, pooling: str = "step") -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reconstruction, series, prior = self.model(windows)
        channel_error = (windows - reconstruction) ** 2
        score = discrepancy_score(series, prior) * channel_error.mean(dim=-1)
        return pooled(score, self.pooling), channel_error


class EnsembleScores(nn.Module):
    """Score = the ensemble's mean of its members' scaled scores, each member pooled its own way
    (pooled again: 'window' gives every step the window's mean)."""

    def __init__(self, model: ScaledEnsemble, pooling: str = "step") -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score, channel_error = self.model(windows)
        return pooled(score, self.pooling), channel_error


def scores_for(model: nn.Module, pooling: str = "step") -> nn.Module:
    """The scoring module for a trained model, in eval mode."""
    if isinstance(model, ScaledEnsemble):
        return EnsembleScores(model, pooling).eval()
    if isinstance(model, AnomalyTransformer):
        return AnomalyTransformerScores(model, pooling).eval()
    return ReconstructionScores(model, pooling).eval()


def score_windows(
    scoring: nn.Module, windows: NDArray[np.float32], batch_size: int = 256
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    scores, errors = [], []
    with torch.no_grad():
        for i in range(0, windows.shape[0], batch_size):
            score, error = scoring(torch.from_numpy(windows[i : i + batch_size]))
            scores.append(score.numpy())
            errors.append(error.numpy())
    return np.concatenate(scores), np.concatenate(errors)


def score_series(
    scoring: nn.Module, values: NDArray[np.floating], window: int, stride: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-step scores [steps] and channel errors [steps, channels] of a standardised series,
    reassembled from windows `stride` apart exactly as the service does it."""
    starts = window_starts(values.shape[0], window, stride)
    windows = sliding_windows(np.asarray(values, dtype=np.float32), starts, window)
    score, error = score_windows(scoring, windows)
    n_steps = values.shape[0]
    return reassemble(score, starts, n_steps), reassemble(error, starts, n_steps)

"""Anomaly Transformer (Xu et al., ICLR 2022), after the paper and its reference code
(github.com/thuml/Anomaly-Transformer): anomaly-attention layers that return, besides their
output, the series association (self-attention weights) and the prior association (a learned
Gaussian over the distance between steps); training is minimax on their discrepancy and the
anomaly score is softmax(-discrepancy) times the reconstruction error."""

from __future__ import annotations

import math

import torch
from torch import nn

from training.windows.models.attention import SelfAttention, sinusoidal_positions

# The reference code's constants: KL smoothing, the scale inside the sigma squashing, and the
# temperature of the association-discrepancy softmax at scoring time.
_KL_EPS = 1e-4
_SIGMA_SLOPE = 5.0
TEMPERATURE = 50.0


class _AnomalyAttention(nn.Module):
    distance: torch.Tensor

    def __init__(self, d_model: int, n_heads: int, window: int, dropout: float) -> None:
        super().__init__()
        self.attention = SelfAttention(d_model, n_heads, dropout)
        self.sigma = nn.Linear(d_model, n_heads)
        steps = torch.arange(window, dtype=torch.float32)
        self.register_buffer("distance", (steps[:, None] - steps[None, :]).abs())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Output [B, L, d], series association and row-normalised prior [B, heads, L, L]."""
        out, series = self.attention(x)
        sigma = torch.sigmoid(self.sigma(x).transpose(1, 2) * _SIGMA_SLOPE) + 1e-5
        sigma = (torch.pow(3.0, sigma) - 1.0).unsqueeze(-1)  # [B, heads, L, 1]
        gauss = torch.exp(-(self.distance**2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)
        prior = gauss / gauss.sum(dim=-1, keepdim=True)
        return out, series, prior


class _EncoderLayer(nn.Module):
    """Post-norm layer as in the reference code (its kernel-1 convolutions are linear maps)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, window: int, dropout: float) -> None:
        super().__init__()
        self.attention = _AnomalyAttention(d_model, n_heads, window, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, d_ff),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(d_ff, d_model),
            nn.Dropout(dropout),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, series, prior = self.attention(x)
        x = self.norm1(x + self.dropout(out))
        return self.norm2(x + self.feed_forward(x)), series, prior


class AnomalyTransformer(nn.Module):
    positions: torch.Tensor

    def __init__(
        self,
        n_channels: int,
        window: int,
        d_model: int,
        n_heads: int,
        n_layers: int,
        d_ff: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        # The reference's token embedding: a bias-free convolution of width 3, circular padding.
        self.token = nn.Conv1d(n_channels, d_model, kernel_size=3, bias=False)
        self.register_buffer("positions", sinusoidal_positions(window, d_model))
        self.embed_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            _EncoderLayer(d_model, n_heads, d_ff, window, dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_channels)

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The reconstruction [B, L, C] and each layer's series and prior associations."""
        channels_first = x.transpose(1, 2)
        # Circular padding written as a concatenation, which every ONNX opset can express.
        padded = torch.cat([channels_first[:, :, -1:], channels_first, channels_first[:, :, :1]], 2)
        hidden = self.embed_dropout(self.token(padded).transpose(1, 2) + self.positions)
        series_list, prior_list = [], []
        for layer in self.layers:
            hidden, series, prior = layer(hidden)
            series_list.append(series)
            prior_list.append(prior)
        reconstruction: torch.Tensor = self.head(self.norm(hidden))
        return reconstruction, series_list, prior_list


def association_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) along the last axis, averaged over heads: [B, heads, L, L] -> [B, L]."""
    kl = p * (torch.log(p + _KL_EPS) - torch.log(q + _KL_EPS))
    return kl.sum(dim=-1).mean(dim=1)


def discrepancy_score(series: list[torch.Tensor], prior: list[torch.Tensor]) -> torch.Tensor:
    """softmax over the window of -(sum over layers of the symmetric KL x temperature): [B, L]."""
    total = torch.zeros_like(series[0][:, 0, :, 0])
    for s, p in zip(series, prior, strict=True):
        total = total + (association_kl(s, p) + association_kl(p, s)) * TEMPERATURE
    return torch.softmax(-total, dim=-1)

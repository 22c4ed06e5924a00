"""The Transformer reconstruction model: the teacher, and (smaller) the student."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from training.windows.models.attention import SelfAttention, sinusoidal_positions


@dataclass(frozen=True)
class TransformerSize:
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int
    dropout: float = 0.1


class _EncoderLayer(nn.Module):
    """Pre-norm encoder layer: x + attention(norm(x)), then x + feed-forward(norm(x))."""

    def __init__(self, size: TransformerSize) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(size.d_model)
        self.attention = SelfAttention(size.d_model, size.n_heads, size.dropout)
        self.feed_forward_norm = nn.LayerNorm(size.d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(size.d_model, size.d_ff),
            nn.GELU(),
            nn.Dropout(size.dropout),
            nn.Linear(size.d_ff, size.d_model),
        )
        self.dropout = nn.Dropout(size.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(self.attention_norm(x))
        x = x + self.dropout(attended)
        output: torch.Tensor = x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))
        return output


class TransformerReconstructor(nn.Module):
    """[N, window, channels] -> its reconstruction. The channels are projected to d_model, which
    is kept below the channel count for the small models so that the network cannot simply copy."""

    positions: torch.Tensor

    def __init__(self, n_channels: int, window: int, size: TransformerSize) -> None:
        super().__init__()
        self.embed = nn.Linear(n_channels, size.d_model)
        self.register_buffer("positions", sinusoidal_positions(window, size.d_model))
        self.layers = nn.ModuleList(_EncoderLayer(size) for _ in range(size.n_layers))
        self.norm = nn.LayerNorm(size.d_model)
        self.head = nn.Linear(size.d_model, n_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(x) + self.positions
        for layer in self.layers:
            hidden = layer(hidden)
        reconstruction: torch.Tensor = self.head(self.norm(hidden))
        return reconstruction

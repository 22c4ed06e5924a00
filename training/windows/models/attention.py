"""Multi-head self-attention written out in matrix products, so it exports to any ONNX opset and
can hand its attention weights to Anomaly Transformer."""

from __future__ import annotations

import math

import torch
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.head_size = d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, d_model] -> [B, heads, L, head_size]."""
        batch, length, _ = x.shape
        return x.reshape(batch, length, self.n_heads, self.head_size).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the attended values [B, L, d_model] and the weights [B, heads, L, L]."""
        query, key, value = self.qkv(x).chunk(3, dim=-1)
        q, k, v = self.split_heads(query), self.split_heads(key), self.split_heads(value)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.head_size), dim=-1)
        attended = self.dropout(weights) @ v
        batch, _, length, _ = attended.shape
        merged = attended.transpose(1, 2).reshape(batch, length, self.n_heads * self.head_size)
        return self.out(merged), weights


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """The fixed sine/cosine position code of Vaswani et al. (2017), [length, d_model]."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(1e4) / d_model))
    code = torch.zeros(length, d_model)
    code[:, 0::2] = torch.sin(position * rate)
    code[:, 1::2] = torch.cos(position * rate)[:, : d_model // 2]
    return code

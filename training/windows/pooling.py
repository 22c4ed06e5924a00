"""How a window's per-step scores become the scores it gives its steps."""

from __future__ import annotations

import torch

from training.windows.config import POOLINGS


def pooled(score: torch.Tensor, pooling: str) -> torch.Tensor:
    """Per-step scores [N, window] as they are ('step'), or each step given its window's mean
    ('window'): the window's distance from normal, which the service then averages over the
    windows covering a step, as TSB-AD's subsequence detectors do."""
    if pooling == "step":
        return score
    if pooling == "window":
        return score.mean(dim=-1, keepdim=True).expand_as(score)
    raise ValueError(f"unknown score pooling {pooling!r}; choose one of {POOLINGS}")

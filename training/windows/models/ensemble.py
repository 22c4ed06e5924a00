"""Reconstruction models scored together: each member's per-step score (its squared error, pooled
its own way) is divided by its scale, the inter-quartile range of those scores on held-out normal
windows, and the members' scaled scores are averaged. A member's median is not subtracted: it
would shift every score by the same constant, changing no ranking, and keep the scores positive
for the Gamma threshold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from training.windows.config import POOLINGS
from training.windows.pooling import pooled


class ScaledEnsemble(nn.Module):
    """[N, window, channels] -> (score [N, window], channel_error [N, window, channels]), both
    the mean over the members in units of each member's scale."""

    scales: torch.Tensor

    def __init__(
        self, members: Sequence[nn.Module], poolings: Sequence[str], scales: Sequence[float]
    ) -> None:
        super().__init__()
        if not len(members) == len(poolings) == len(scales) >= 1:
            raise ValueError("an ensemble needs one pooling and one scale per member")
        if unknown := set(poolings) - set(POOLINGS):
            raise ValueError(f"unknown score pooling {unknown}; choose {POOLINGS}")
        if not all(scale > 0 for scale in scales):
            raise ValueError(f"every member's scale must be positive, got {list(scales)}")
        self.members = nn.ModuleList(members)
        self.poolings = tuple(poolings)
        self.register_buffer("scales", torch.tensor(list(scales), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores, errors = [], []
        for i, (member, pooling) in enumerate(zip(self.members, self.poolings, strict=True)):
            error = (x - member(x)) ** 2 / self.scales[i]
            scores.append(pooled(error.mean(dim=-1), pooling))
            errors.append(error)
        return torch.stack(scores).mean(dim=0), torch.stack(errors).mean(dim=0)


def member_scale(
    member: nn.Module, pooling: str, held_out: NDArray[np.float32], batch_size: int = 256
) -> float:
    """The inter-quartile range of `member`'s pooled per-step scores on held-out windows; where
    they do not spread (a constant series), their mean, else 1."""
    scores = []
    with torch.no_grad():
        for i in range(0, held_out.shape[0], batch_size):
            batch = torch.from_numpy(held_out[i : i + batch_size])
            scores.append(pooled(((batch - member(batch)) ** 2).mean(dim=-1), pooling).numpy())
    values = np.concatenate(scores).ravel().astype(np.float64)
    q1, q3 = np.percentile(values, [25, 75])
    for scale in (q3 - q1, values.mean()):
        if scale > 0:
            return float(scale)
    return 1.0


def fit_scaled_ensemble(
    members: Sequence[nn.Module], poolings: Sequence[str], held_out: NDArray[np.float32]
) -> ScaledEnsemble:
    """The fitted `members`, each scaled by its scores on `held_out` windows, which none of them
    was fitted on (a kNN member would find a window of its own bank at distance 0)."""
    if held_out.shape[0] == 0:
        raise ValueError("the ensemble's scales need held-out windows")
    scales = [
        member_scale(member.eval(), pooling, held_out)
        for member, pooling in zip(members, poolings, strict=True)
    ]
    return ScaledEnsemble(members, poolings, scales).eval()

"""Stage 2's contrastive loss: normal blocks keep reconstructing well, labelled anomalies are
pushed above the margin a (after Hadsell et al.), in the variants measured in docs/TRAINING.md."""

from __future__ import annotations

from typing import Literal

import torch

ContrastiveLoss = Literal["hinge", "squared_hinge", "distance"]
CONTRASTIVE_LOSSES: tuple[ContrastiveLoss, ...] = ("hinge", "squared_hinge", "distance")


def contrastive_loss(
    scores: torch.Tensor, is_normal: torch.Tensor, margin: float, kind: ContrastiveLoss
) -> torch.Tensor:
    """Mean of y*d + (1-y)*penalty(d) over the batch, y = 1 for normal, d = the block score.

    - hinge: max(0, a - d), the paper's loss.
    - squared_hinge: max(0, a - d)^2 / a, softer near the margin (divided by a to keep d's units).
    - distance: (max(0, sqrt(a) - sqrt(d)))^2, Hadsell's form with the distance sqrt(d) as d.
    """
    if margin <= 0:
        raise ValueError(f"the margin must be positive, got {margin}")
    y = is_normal.to(scores.dtype)
    if kind == "hinge":
        penalty = torch.relu(margin - scores)
    elif kind == "squared_hinge":
        penalty = torch.relu(margin - scores) ** 2 / margin
    elif kind == "distance":
        # The small floor keeps the gradient of sqrt finite at a perfect reconstruction.
        penalty = torch.relu(margin**0.5 - torch.sqrt(scores + 1e-12)) ** 2
    else:
        raise ValueError(f"unknown contrastive loss {kind!r}; choose one of {CONTRASTIVE_LOSSES}")
    return (y * scores + (1.0 - y) * penalty).mean()

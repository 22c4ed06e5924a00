"""Stage 2 continued from the served model: its weights and standardisation, its stage-1 margin
a, the labelled anomalies pushed above a while normal blocks (false alarms included) keep
reconstructing well."""

from __future__ import annotations

import copy

import numpy as np
import torch

from training.audio.losses import ContrastiveLoss
from training.audio.model import BlockScorer
from training.audio.stages import FitReport, FitSettings, train_stage2


def fine_tune(
    champion: BlockScorer,
    normal: np.ndarray,
    validation_normal: np.ndarray,
    anomalous: np.ndarray,
    margin: float,
    loss: ContrastiveLoss,
    settings: FitSettings,
    seed: int,
) -> tuple[BlockScorer, FitReport]:
    """A fine-tuned copy of `champion` (left untouched). The standardisation stays the
    champion's, so the margin keeps its meaning; early stopping watches the validation normal
    blocks and the labelled anomalies."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    challenger = copy.deepcopy(champion)
    no_validation_anomalies = np.empty((0, anomalous.shape[1]), dtype=np.float32)
    report = train_stage2(
        challenger,
        normal,
        anomalous,
        validation_normal,
        no_validation_anomalies,
        margin,
        loss,
        settings,
        generator,
    )
    if challenger.score == "latent_knn":
        # The codes moved with the weights: the memory bank is rebuilt from the normal blocks.
        challenger.set_memory_bank(normal, seed)
    return challenger, report

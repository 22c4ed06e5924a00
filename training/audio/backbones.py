"""The two input shapes the autoencoder is trained on: the paper's 128 x 32 log-mel blocks and
the DCASE 2020 baseline's 64-band, 5-frame context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from service.bundle.manifest import LogMelSettings

Backbone = Literal["block", "context"]
BACKBONES: tuple[Backbone, ...] = ("block", "context")


@dataclass(frozen=True)
class BackboneRecipe:
    """Feature settings for serving, and the block hop (in frames) used to cut training data."""

    features: LogMelSettings
    train_hop_frames: int
    description: str


def backbone_recipe(backbone: Backbone, sample_rate: int = 16000) -> BackboneRecipe:
    if backbone == "block":
        # Served blocks do not overlap (the paper "splits" the spectrogram); training blocks
        # start every 8 frames, four times the data from the same clips.
        return BackboneRecipe(
            features=LogMelSettings(
                sample_rate=sample_rate,
                n_fft=2048,
                win_length=2048,
                hop_length=512,
                n_mels=128,
                frames_per_block=32,
                block_hop_frames=32,
            ),
            train_hop_frames=8,
            description="paper: 128 mels x 32 frames, non-overlapping blocks",
        )
    if backbone == "context":
        return BackboneRecipe(
            features=LogMelSettings(
                sample_rate=sample_rate,
                n_fft=1024,
                win_length=1024,
                hop_length=512,
                n_mels=64,
                frames_per_block=5,
                block_hop_frames=1,
            ),
            train_hop_frames=1,
            description="DCASE 2020 baseline: 64 mels x 5-frame context, hop 1 frame",
        )
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")

"""A small stage-1 bundle trained on real UAV recordings (normal ones only), shared by the
retraining tests, and the held-out clips an operator would hear."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.realdata import real_data
from training.audio.clips import recording_clips
from training.audio.datasets import Recording
from training.audio.pipeline import AudioTrainingConfig, train_audio_bundle
from training.audio.stages import FitSettings

NAME = "uav"
RATE = 16000
CLIP_SECONDS = 10.0
# Enough recordings for every side of the split, few enough to train in seconds.
NORMAL_RECORDINGS = 12
BROKEN_RECORDINGS = 4


@dataclass(frozen=True)
class StageOne:
    data: Path
    bundle: Path
    # The recordings the bundle never trained on (test side): normal and broken propellers.
    held_out: tuple[Recording, ...]

    def serve(self, models: Path) -> Path:
        """A copy of the bundle in `models`, as the served version 1."""
        return Path(shutil.copytree(self.bundle, models / NAME))


@pytest.fixture(scope="session")
def stage_one(tmp_path_factory: pytest.TempPathFactory) -> StageOne:
    source = real_data("audio/uav_propeller")
    root = tmp_path_factory.mktemp("uav")
    data = root / "data"
    for folder, count in (("normal", NORMAL_RECORDINGS), ("1_broken", BROKEN_RECORDINGS)):
        (data / folder).mkdir(parents=True)
        for path in sorted((source / folder).glob("*.flac"))[:count]:
            (data / folder / path.name).symlink_to(path)
    torch.set_num_threads(1)
    result = train_audio_bundle(
        AudioTrainingConfig(
            data=data,
            out=root / "bundle",
            clip_seconds=CLIP_SECONDS,
            threshold_fit="held_out",
            stage1=FitSettings(max_epochs=8, patience=3, quiet=True),
            name=NAME,
        )
    )
    return StageOne(data, result.bundle_dir, result.split.test)


def first_clips(recording: Recording, count: int) -> list[np.ndarray]:
    return [c.samples for c in recording_clips(recording, RATE, CLIP_SECONDS)[:count]]

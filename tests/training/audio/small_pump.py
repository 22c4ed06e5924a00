"""The small generated DCASE-layout data set the audio training tests train on (two toy pumps,
1 s clips), and the quick training settings they share."""

from __future__ import annotations

from pathlib import Path

from training.audio.pipeline import AudioTrainingConfig
from training.audio.stages import FitSettings
from training.audio.synthetic import write_dcase_tree

FIT = FitSettings(max_epochs=6, patience=3, batch_size=128, quiet=True)


def write_small_pump(root: Path, anomaly: str) -> Path:
    """5 normal training clips per machine, 2 normal and 3 anomalous (`anomaly`) test clips."""
    write_dcase_tree(
        root,
        machine_type="toy_pump",
        machine_ids=(0, 2),
        train_normal=5,
        test_normal=2,
        test_anomaly=3,
        seconds=1.0,
        anomaly=anomaly,
        seed=1,
    )
    return root


def small_config(data: Path, out: Path, **overrides: object) -> AudioTrainingConfig:
    """A quick training of the context backbone with 2 labelled anomalies; `overrides` set any
    other field."""
    settings: dict[str, object] = {
        "data": data,
        "out": out,
        "labeled_anomalies": 2,
        "backbone": "context",
        "stage1": FIT,
        "stage2": FIT,
        "seed": 3,
    }
    settings.update(overrides)
    return AudioTrainingConfig(**settings)  # type: ignore[arg-type]

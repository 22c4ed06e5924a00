"""Retraining through its Python API on real UAV recordings: it refuses to run on too few labels
or without the bundle's weights and data, and the promotion rule refuses a challenger trained on
deliberately wrong labels, writing nothing but the logged decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from tests.training.retrain.conftest import NAME, RATE, StageOne, first_clips
from training.audio.export import WEIGHTS_FILE
from training.audio.stages import FitSettings
from training.retrain.champion import RetrainError
from training.retrain.labels import LabelledClip
from training.retrain.pipeline import DECISION_LOG, RetrainConfig, retrain_bundle

QUICK = FitSettings(max_epochs=10, patience=3, quiet=True)


def _clips(stage_one: StageOne, folder: Path, flip: bool) -> list[LabelledClip]:
    """Two clips of every held-out recording, as the event store keeps them, labelled with the
    truth or its opposite."""
    folder.mkdir()
    clips = []
    for recording in stage_one.held_out:
        for index, samples in enumerate(first_clips(recording, 2)):
            path = folder / f"{recording.recording_id.replace('/', '_')}-{index}.flac"
            sf.write(path, samples, RATE)
            anomalous = recording.is_anomaly != flip
            clips.append(LabelledClip(path.stem, "anomaly" if anomalous else "normal", path))
    return clips


def test_too_few_confirmed_anomalies_refuse_to_run(tmp_path: Path, stage_one: StageOne) -> None:
    models = tmp_path / "models"
    stage_one.serve(models)
    clips = [
        LabelledClip("a", "anomaly", tmp_path / "a.flac"),
        LabelledClip("b", "normal", tmp_path / "b.flac"),
    ]
    with pytest.raises(RetrainError, match="at least 3 confirmed anomalies"):
        retrain_bundle(RetrainConfig(models=models, model=NAME), clips)
    assert sorted(p.name for p in models.iterdir()) == [NAME]


def test_a_bundle_without_torch_weights_cannot_be_retrained(
    tmp_path: Path, stage_one: StageOne
) -> None:
    models = tmp_path / "models"
    (stage_one.serve(models) / WEIGHTS_FILE).unlink()
    clips = [LabelledClip(str(i), "anomaly", tmp_path / f"{i}.flac") for i in range(3)]
    with pytest.raises(ValueError, match="no torch weights"):
        retrain_bundle(RetrainConfig(models=models, model=NAME), clips)


def test_moved_training_data_is_asked_for(tmp_path: Path, stage_one: StageOne) -> None:
    models = tmp_path / "models"
    split = stage_one.serve(models) / "split.json"
    document = json.loads(split.read_text())
    split.write_text(json.dumps({**document, "data": str(tmp_path / "gone")}))
    clips = [LabelledClip(str(i), "anomaly", tmp_path / f"{i}.flac") for i in range(3)]
    with pytest.raises(RetrainError, match="pass --data"):
        retrain_bundle(RetrainConfig(models=models, model=NAME), clips)


def test_a_challenger_trained_on_wrong_labels_is_refused(
    tmp_path: Path, stage_one: StageOne
) -> None:
    models = tmp_path / "models"
    stage_one.serve(models)
    clips = _clips(stage_one, tmp_path / "events", flip=True)
    result = retrain_bundle(RetrainConfig(models=models, model=NAME, stage2=QUICK), clips)
    assert not result.decision.promoted
    assert result.bundle_dir is None
    # The data's own anomalous recordings give the labels away: the challenger ranks them lower.
    figures = result.decision.figures
    assert figures["challenger_auc_test_recordings"] < figures["champion_auc_test_recordings"]
    assert sorted(p.name for p in models.iterdir()) == [DECISION_LOG, NAME]
    logged = [json.loads(line) for line in (models / DECISION_LOG).read_text().splitlines()]
    assert [(d["promoted"], d["champion_version"], d["challenger_version"]) for d in logged] == [
        (False, "1", "2")
    ]
    assert logged[0]["figures"] == figures

"""train_audio_bundle on a tiny DCASE-layout tree: a loadable bundle whose thresholds come from
out-of-fold scores of its normal recordings, evaluated per machine ID, identical when retrained
with its seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from service.bundle.loader import load_bundle
from service.bundle.manifest import AudioManifest, read_history
from service.scoring.audio import AudioScorer
from tests.training.audio.small_pump import small_config, write_small_pump
from training.audio.clips import iter_clips
from training.audio.datasets import DatasetError
from training.audio.pipeline import train_audio_bundle


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dcase_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_pump(tmp_path_factory.mktemp("dcase"), "bearing")


def test_dcase_bundle_is_thresholded_evaluated_and_reproducible(
    dcase_root: Path, tmp_path: Path
) -> None:
    result = train_audio_bundle(small_config(dcase_root, tmp_path / "first"))
    manifest = result.manifest
    assert (manifest.machine_type, manifest.backbone) == ("toy_pump", "context")
    assert manifest.training.layout == "dcase"
    assert manifest.training.anomaly_recordings == 2
    assert manifest.clip_decision.r == manifest.block_decision.r == 0.99
    assert "out-of-fold scores" in manifest.clip_decision.fitted_on

    # Too few recordings for a held-out threshold side: every normal recording of train/
    # trains, and the thresholds come from out-of-fold scores of exactly those recordings.
    split = json.loads((tmp_path / "first" / "split.json").read_text())
    assert split["recordings"]["threshold"] == []
    train_normal = {e["id"] for e in split["recordings"]["train"] if e["label"] == "normal"}
    assert set(result.threshold_scores.recording_ids) == train_normal
    assert all(i.startswith("train/normal_") for i in train_normal)
    assert all(e["id"].startswith("test/") for e in split["recordings"]["test"])
    history = read_history(tmp_path / "first")
    assert history is not None
    assert history.best_epoch == {
        "stage1": result.stage1.best_epoch,
        "stage2": result.stage2.best_epoch if result.stage2 else None,
    }
    assert [e.train_loss for e in history.stages["stage1"]] == list(result.stage1.train_losses)
    assert [e.validation_loss for e in history.stages["stage2"]] == list(
        result.stage2.validation_losses if result.stage2 else ()
    )

    # The DCASE convention: ROC figures per machine ID, averaged.
    evaluation = manifest.evaluation
    assert evaluation is not None
    assert evaluation.auc is not None
    assert set(evaluation.extra) >= {"auc[id_00]", "auc[id_02]", "pauc[id_00]", "pauc[id_02]"}
    assert evaluation.auc == pytest.approx(
        (evaluation.extra["auc[id_00]"] + evaluation.extra["auc[id_02]"]) / 2
    )
    assert (evaluation.n_normal, evaluation.n_anomaly) == (4, 4)  # 2 of 6 anomalies labelled

    # The bundle loads in the service and its scores are those the evaluation used.
    bundle = load_bundle(tmp_path / "first")
    assert isinstance(bundle.manifest, AudioManifest)
    test_recordings = [r for r in result.dataset.recordings if r.partition == "test"]
    clip = next(iter_clips(test_recordings, 16000, None))
    served = AudioScorer(bundle).score_samples(clip.samples).clip_score

    again = train_audio_bundle(small_config(dcase_root, tmp_path / "again"))
    assert again.manifest.clip_decision == manifest.clip_decision
    assert again.manifest.evaluation == evaluation
    rescored = AudioScorer(load_bundle(tmp_path / "again")).score_samples(clip.samples)
    assert rescored.clip_score == served
    assert np.isfinite(served)


def test_refusals_come_before_any_training(dcase_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="asked for 9 labelled anomalous recordings"):
        train_audio_bundle(small_config(dcase_root, tmp_path / "a", labeled_anomalies=9))
    with pytest.raises(ValueError, match="bundle name"):
        train_audio_bundle(small_config(dcase_root, tmp_path / "b", name="bad name!"))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "manifest.json").write_text("{}")
    with pytest.raises(ValueError, match="already holds a bundle"):
        train_audio_bundle(small_config(dcase_root, tmp_path / "taken"))

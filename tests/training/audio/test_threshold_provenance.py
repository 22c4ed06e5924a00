"""The thresholds of a trained bundle are fitted on the data they claim. The scores are recomputed
here independently of the pipeline: the service's log-mel extractor cuts the recordings named in
split.json and ONNX Runtime scores the exported model.onnx; the Gamma fits and quantiles are then
redone with scipy and numpy and compared with the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from scipy import stats

from service.audio.decode import load_audio
from service.bundle.manifest import AudioManifest, read_manifest
from service.features.logmel import LogMelExtractor
from training.audio.datasets import Recording
from training.audio.pipeline import AudioTrainingConfig, AudioTrainingResult, train_audio_bundle
from training.audio.splits import SplitFractions
from training.audio.stages import FitSettings
from training.audio.synthetic import write_folder_tree
from training.thresholds import fit_gamma

FIT = FitSettings(max_epochs=4, patience=2, batch_size=64, quiet=True)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder_tree(
        tmp_path_factory.mktemp("data") / "machine",
        normal=10,
        anomalies={"clicking": ("click", 3)},
        seconds=4.0,
        seed=5,
    )


def _train(
    machine: Path, out: Path, threshold_fit: str, false_alarm_rate: float = 0.01
) -> AudioTrainingResult:
    return train_audio_bundle(
        AudioTrainingConfig(
            data=machine,
            out=out,
            labeled_anomalies=0,
            clip_seconds=2.0,
            stage1=FIT,
            stage2=FIT,
            # 3 of 10 normal recordings fit held-out thresholds, 2 are tested.
            fractions=SplitFractions(validation=0.1, threshold=0.3, test=0.2),
            threshold_fit=threshold_fit,  # type: ignore[arg-type]
            false_alarm_rate=false_alarm_rate,
            seed=1,
        )
    )


def _side(bundle: Path, side: str, machine: Path) -> list[Recording]:
    entries = json.loads((bundle / "split.json").read_text())["recordings"][side]
    return [
        Recording(machine / f"{e['id']}.flac", e["id"], e["label"], e["id"].split("/")[0])
        for e in entries
        if e["label"] == "normal"
    ]


def _onnx_scores(
    bundle: Path, recordings: list[Recording], hop: int | None, reconstruction: bool = False
) -> list[np.ndarray]:
    """Block scores of every 2 s clip of `recordings`, one array per clip; with
    `reconstruction`, the blocks' reconstruction errors (the mean of `band_error`), which the
    margin a is fitted on whatever block score the bundle serves."""
    manifest = read_manifest(bundle)
    assert isinstance(manifest, AudioManifest)
    extractor = LogMelExtractor(manifest.features)
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    rate = manifest.features.sample_rate
    per_clip = []
    for recording in recordings:
        samples = load_audio(recording.path, rate)
        for start in range(0, samples.size - 2 * rate + 1, 2 * rate):
            blocks = extractor.blocks(extractor.log_mel(samples[start : start + 2 * rate]), hop)
            score, band_error = session.run(["score", "band_error"], {"blocks": blocks})
            chosen = band_error.mean(axis=1) if reconstruction else score
            per_clip.append(chosen.astype(np.float64))
    return per_clip


def _gamma_ppf(scores: np.ndarray, r: float) -> float:
    # fit_gamma lifts exact zeros (a latent_knn block whose code is in the bank) to the
    # smallest positive score; the Gamma is then the plain maximum-likelihood fit.
    shape, scale = fit_gamma(scores)
    return float(stats.gamma.ppf(r, shape, scale=scale))


@pytest.fixture(scope="module")
def held_out(machine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = tmp_path_factory.mktemp("bundles") / "held"
    _train(machine, bundle, "held_out")
    return bundle


def _manifest(bundle: Path) -> AudioManifest:
    manifest = read_manifest(bundle)
    assert isinstance(manifest, AudioManifest)
    return manifest


def test_held_out_thresholds_are_fitted_on_the_threshold_recordings_only(
    machine: Path, held_out: Path
) -> None:
    bundle = held_out
    manifest = _manifest(bundle)
    threshold_side = _side(bundle, "threshold", machine)
    assert len(threshold_side) == 3

    per_clip = _onnx_scores(bundle, threshold_side, None)
    clip_scores = np.array([s.mean() for s in per_clip])
    block_scores = np.concatenate(per_clip)
    assert manifest.clip_decision.n_scores == clip_scores.size == 6
    assert manifest.clip_decision.threshold == pytest.approx(
        _gamma_ppf(clip_scores, 0.99), rel=1e-4
    )
    assert manifest.block_decision.threshold == pytest.approx(
        _gamma_ppf(block_scores, 0.99), rel=1e-4
    )
    gamma, budget = manifest.operating_points
    assert gamma.thresholds == {
        "clip": manifest.clip_decision.threshold,
        "block": manifest.block_decision.threshold,
    }
    assert gamma.fit.method == budget.fit.method == "held_out"
    assert gamma.fit.recordings == 3
    # 6 clips cannot resolve a 1 % budget: the Gamma's quantile at 0.99 stands in for it.
    assert budget.thresholds["clip"] == pytest.approx(_gamma_ppf(clip_scores, 0.99), rel=1e-4)
    assert budget.predicted["clip"].rate == pytest.approx(
        np.mean(clip_scores > budget.thresholds["clip"])
    )
    assert manifest.default_operating_point == "false_alarm_rate"


def test_margin_a_is_fitted_on_stage_one_scores_of_the_training_normal_blocks(
    machine: Path, held_out: Path
) -> None:
    # With no labelled anomalies the exported model is stage 1's, so its reconstruction errors
    # of the training normal blocks (cut every train_hop_frames) are the ones the margin was
    # fitted on.
    bundle = held_out
    manifest = _manifest(bundle)
    train_side = _side(bundle, "train", machine)
    hop = manifest.training.train_hop_frames
    assert hop is not None
    assert hop < manifest.features.block_hop_frames
    blocks = np.concatenate(_onnx_scores(bundle, train_side, hop, reconstruction=True))
    assert manifest.training_margin.n_scores == blocks.size
    assert manifest.training_margin.threshold == pytest.approx(_gamma_ppf(blocks, 0.99), rel=1e-3)


def test_out_of_fold_thresholds_rest_on_every_normal_training_recording_and_no_other(
    machine: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "folds"
    # A budget of 0.2 per clip is resolved by the 14 observed clip scores.
    result = _train(machine, bundle, "auto", false_alarm_rate=0.2)
    manifest = result.manifest
    scores = result.threshold_scores
    train_side = {r.recording_id for r in _side(bundle, "train", machine)}
    others = {
        r.recording_id for side in ("validation", "test") for r in _side(bundle, side, machine)
    }
    assert _side(bundle, "threshold", machine) == []
    assert set(scores.recording_ids) == train_side
    assert not set(scores.recording_ids) & others
    # Two 2 s clips per 4 s recording, each scored once, by the fold model that never heard it.
    counts = np.bincount(scores.clip_recording, minlength=len(scores.recording_ids))
    assert counts.tolist() == [2] * len(scores.recording_ids)
    assert scores.folds == 3

    assert manifest.clip_decision.threshold == pytest.approx(_gamma_ppf(scores.clip, 0.99))
    assert manifest.block_decision.threshold == pytest.approx(_gamma_ppf(scores.block, 0.99))
    budget = next(p for p in manifest.operating_points if p.name == "false_alarm_rate")
    assert budget.fit.method == "out_of_fold"
    assert budget.fit.folds == scores.folds
    assert budget.fit.recordings == len(train_side)
    # The split-conformal quantile: the ceil(15 x 0.8) = 12th smallest of 14 scores.
    assert budget.thresholds["clip"] == np.sort(scores.clip)[11]
    assert budget.thresholds["block"] == np.sort(scores.block)[11]
    assert budget.predicted["clip"].rate == pytest.approx(
        np.mean(scores.clip > budget.thresholds["clip"])
    )


def test_two_normal_training_recordings_of_one_clip_each_are_enough(tmp_path: Path) -> None:
    # 4 normal recordings: 1 tests, 1 validates, 2 train; each file is one clip. A held-out
    # threshold side would hold one clip, too few for a Gamma; out of fold, both recordings
    # give scores (leave one recording out), and training says in words that it is too little.
    machine = write_folder_tree(
        tmp_path / "tiny", normal=4, anomalies={"clicking": ("click", 2)}, seconds=2.0, seed=3
    )
    result = train_audio_bundle(
        AudioTrainingConfig(
            data=machine,
            out=tmp_path / "bundle",
            stage1=FIT,
            min_threshold_recordings=3,
            seed=0,
        )
    )
    scores = result.threshold_scores
    assert (scores.method, scores.folds, scores.n_recordings, scores.clip.size) == (
        "out_of_fold",
        2,
        2,
        2,
    )
    assert any(
        "rest on only 2 normal recordings" in w and "Record at least 1 more" in w
        for w in result.warnings
    )
    assert any("needs at least 99 normal clips" in w for w in result.warnings)

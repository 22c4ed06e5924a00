"""`auscult report` on a small audio bundle trained for real: the page shows every section, each
figure loads in Chromium, and the figures it states are those of the held-out clips scored
independently (AUC by sklearn, false-alarm rate over the normal clips only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from sklearn.metrics import roc_auc_score

from service.audio.decode import load_audio
from service.bundle.loader import load_bundle
from service.bundle.manifest import (
    AudioManifest,
    OperatingPoint,
    ThresholdFit,
    read_manifest,
    write_manifest,
)
from service.cli import main as auscult
from service.scoring.audio import AudioScorer
from tests.bundle_factory import machine_sound, make_audio_bundle, make_windows_bundle
from tests.training.report.browser import assert_complete, show
from training.audio.datasets import open_dataset
from training.audio.evaluation import score_recordings
from training.audio.pipeline import AudioTrainingConfig, train_audio_bundle
from training.audio.stages import FitSettings
from training.audio.synthetic import write_dcase_tree
from training.report.writer import write_report

FIT = FitSettings(max_epochs=3, patience=2, batch_size=128, quiet=True)
WITH_DATA = {"bundle", "operating-points", "measured", "training", "scores", "roc", "clip"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(bundle, data): a context-backbone bundle trained on a small generated DCASE tree."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("audio")
    data = write_dcase_tree(
        root / "data",
        machine_type="toy_fan",
        machine_ids=(0,),
        train_normal=6,
        test_normal=4,
        test_anomaly=4,
        seconds=1.0,
        anomaly="bearing",
        seed=1,
    )
    config = AudioTrainingConfig(
        data=data,
        out=root / "bundle",
        labeled_anomalies=1,
        backbone="context",
        stage1=FIT,
        stage2=FIT,
        seed=3,
    )
    train_audio_bundle(config)
    return root / "bundle", data


def _unseen_scores(bundle: Path, data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Clip scores and labels of the recordings split.json does not list as seen, scored by
    the evaluation's own path."""
    split = json.loads((bundle / "split.json").read_text())
    seen = {
        e["id"] for side in ("train", "validation", "threshold") for e in split["recordings"][side]
    }
    unseen = [r for r in open_dataset(data).recordings if r.recording_id not in seen]
    scored = score_recordings(load_bundle(bundle), unseen, None)
    return np.array([c.score for c in scored]), np.array([c.recording.is_anomaly for c in scored])


def _with_point_at(bundle: Path, copy: Path, clip_threshold: float) -> AudioManifest:
    """A copy of the bundle with one more operating point, at `clip_threshold`."""
    shutil.copytree(bundle, copy)
    manifest = read_manifest(copy)
    assert isinstance(manifest, AudioManifest)
    extra = OperatingPoint(
        name="planted",
        rule="percentile",
        target=50.0,
        thresholds={"clip": clip_threshold, "block": clip_threshold},
        fit=ThresholdFit(method="held_out", recordings=4, n_scores=4),
    )
    manifest = manifest.model_copy(update={"operating_points": [*manifest.operating_points, extra]})
    write_manifest(copy, manifest)
    return manifest


def test_the_page_shows_every_figure_and_the_held_out_figures(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle, data = trained
    scores, anomalous = _unseen_scores(bundle, data)
    assert (int((~anomalous).sum()), int(anomalous.sum())) == (4, 3)  # 1 of 4 anomalies labelled
    # A point that flags some normal clips, so a false-alarm rate over the wrong clips shows.
    manifest = _with_point_at(bundle, tmp_path / "bundle", float(np.median(scores[~anomalous])))

    index = write_report(tmp_path / "bundle", data, tmp_path / "report")
    page = show(index.as_uri())
    assert_complete(page, WITH_DATA)
    assert {i.src for i in page.images} == {
        "scores.png", "roc.png", "loss.png", "clip_blocks.png", "clip_bands.png"
    }  # fmt: skip
    assert page.title.startswith(f"{manifest.name} version {manifest.version}")

    assert page.figure("auc") == pytest.approx(roc_auc_score(anomalous, scores), abs=5e-5)
    assert page.figure("pauc") == pytest.approx(
        roc_auc_score(anomalous, scores, max_fpr=0.1), abs=5e-5
    )
    rates = {}
    for point in manifest.operating_points:
        flagged = scores > point.thresholds["clip"]
        rates[point.name] = flagged[~anomalous].sum() / (~anomalous).sum()
        assert page.figure(f"false_alarm_rate[{point.name}]") == pytest.approx(
            rates[point.name], abs=5e-5
        )
    assert rates["planted"] == 0.5


def test_the_command_writes_into_the_bundle_and_shows_a_chosen_clip(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, data = trained
    shutil.copytree(bundle, tmp_path / "bundle")
    clip = tmp_path / "knocking.wav"
    sf.write(clip, machine_sound(2.5, seed=5, anomalous=True), 16000)
    assert (
        auscult(["report", str(tmp_path / "bundle"), "--data", str(data), "--clip", str(clip)]) == 0
    )
    index = tmp_path / "bundle" / "report" / "index.html"
    assert str(index) in capsys.readouterr().out
    page = show(index.as_uri())
    assert_complete(page, WITH_DATA)
    # The clip shown is the file asked for, scored whole: its blocks are the scorer's.
    blocks = (
        AudioScorer(load_bundle(bundle)).score_samples(load_audio(clip, 16000)).block_scores.size
    )
    html = index.read_text()
    assert "knocking.wav: clip score" in html
    assert f"{blocks} blocks." in html


def test_a_bundle_from_before_operating_points_and_history_still_gets_a_page(
    tmp_path: Path,
) -> None:
    bundle = make_audio_bundle(tmp_path / "old", n_mels=32)
    clip = tmp_path / "hum.wav"
    sf.write(clip, machine_sound(2.0, seed=6), 16000)
    page = show(write_report(bundle, clip_file=clip).as_uri())
    assert_complete(page, {"bundle", "operating-points", "training", "clip"})
    html = (bundle / "report" / "index.html").read_text()
    assert "written before bundles kept operating points" in html
    assert "holds no training history" in html
    assert "no data folder given" in html


def test_refusals_say_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert auscult(["report", str(tmp_path / "missing")]) == 2
    assert "auscult report: error:" in capsys.readouterr().err
    bundle = make_windows_bundle(tmp_path / "sensor")
    assert auscult(["report", str(bundle), "--clip", str(tmp_path / "x.wav")]) == 2
    assert "--clip applies to audio bundles only" in capsys.readouterr().err
    assert not (bundle / "report").exists()

"""`auscult report` on a small sensor bundle trained for real on generated CSV files: every
section and figure shows in Chromium, and the figures stated are those of the test steps scored
independently (AUC and pAUC by sklearn, recall over the anomalous steps, false alarms over the
normal steps, segments alarmed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from service.bundle.loader import load_bundle
from service.bundle.manifest import (
    OperatingPoint,
    ThresholdFit,
    WindowsManifest,
    read_manifest,
    write_manifest,
)
from service.scoring.windows import WindowsScorer
from tests.bundle_factory import sensor_series
from tests.training.report.browser import assert_complete, show
from training.cli import main as training_main
from training.report.writer import write_report

STEPS = 600
# (file, anomalous steps [start, stop), shifted channel, shift) of the two test recordings: one
# plain fault and one barely above the noise, so the ROC and the recall are not trivially 1.
TEST_PARTS = (("a.csv", (300, 340), 1, 4.0), ("b.csv", (120, 180), 2, 0.3))
SMALL = ["--window", "20", "--stride", "10", "--train-stride", "5", "--epochs", "2"]
SECTIONS = {"bundle", "operating-points", "measured", "training", "scores", "roc", "series"}


def _test_part(seed: int, start: int, stop: int, channel: int, shift: float) -> np.ndarray:
    """A test recording whose `channel` is shifted by `shift` over [start, stop), in the
    CSV's rounding."""
    values = sensor_series(STEPS, seed=30 + seed).astype(np.float64)
    values[start:stop, channel] += shift
    return np.round(values, 5)


def _write_csv(path: Path, values: np.ndarray, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp," + ",".join(f"sensor_{i}" for i in range(values.shape[1])) + ",label"]
    lines += [
        f"{i}," + ",".join(f"{v:.5f}" for v in row) + f",{int(labels[i])}"
        for i, row in enumerate(values)
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(bundle, data): a distilled-student bundle (a model with epochs, so the page shows its
    loss) trained on generated CSV recordings."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("windows")
    data = root / "data"
    _write_csv(data / "train" / "train.csv", sensor_series(STEPS, seed=21), np.zeros(STEPS, bool))
    for seed, (name, (start, stop), channel, shift) in enumerate(TEST_PARTS):
        labels = np.zeros(STEPS, bool)
        labels[start:stop] = True
        _write_csv(data / "test" / name, _test_part(seed, start, stop, channel, shift), labels)
    bundle = root / "bundle"
    argv = ["train", "windows", "--data", str(data), "--format", "csv", "--out", str(bundle)]
    options = ["--threads", "1", "--no-evaluate", "--model", "distilled_student"]
    assert training_main([*argv, *SMALL, *options]) == 0
    return bundle, data


def _scored_independently(bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    """The test parts' step scores, in file order, and their labels."""
    scorer = WindowsScorer(load_bundle(bundle))
    scores, labels = [], []
    for seed, (_, (start, stop), channel, shift) in enumerate(TEST_PARTS):
        scores.append(scorer.score(_test_part(seed, start, stop, channel, shift)).scores)
        part_labels = np.zeros(STEPS, bool)
        part_labels[start:stop] = True
        labels.append(part_labels)
    return np.concatenate(scores), np.concatenate(labels)


def _false_alarms(flagged: np.ndarray, anomalous: np.ndarray) -> int:
    """Runs of flagged steps, within each test recording, that touch no anomalous step."""
    count = 0
    for part in range(len(TEST_PARTS)):
        steps = slice(part * STEPS, (part + 1) * STEPS)
        run_touches: bool | None = None
        for is_flagged, is_anomalous in zip(flagged[steps], anomalous[steps], strict=True):
            if is_flagged:
                run_touches = bool(run_touches) or bool(is_anomalous)
            elif run_touches is not None:
                count += not run_touches
                run_touches = None
        if run_touches is not None:
            count += not run_touches
    return count


def test_the_page_shows_every_figure_and_the_test_figures(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle, data = trained
    score, anomalous = _scored_independently(bundle)
    # One more operating point, flagging half the normal steps: a false-alarm share over the
    # wrong steps, or a recall over the wrong ones, then shows.
    shutil.copytree(bundle, tmp_path / "bundle")
    manifest = read_manifest(bundle)
    assert isinstance(manifest, WindowsManifest)
    planted = OperatingPoint(
        name="planted",
        rule="percentile",
        target=50.0,
        thresholds={"step": float(np.median(score[~anomalous]))},
        fit=ThresholdFit(method="held_out", recordings=2, n_scores=int((~anomalous).sum())),
    )
    manifest = manifest.model_copy(
        update={"operating_points": [*manifest.operating_points, planted]}
    )
    write_manifest(tmp_path / "bundle", manifest)

    page = show(write_report(tmp_path / "bundle", data, tmp_path / "report").as_uri())
    assert_complete(page, SECTIONS)
    assert {i.src for i in page.images} == {"scores.png", "roc.png", "loss.png", "series.png"}
    auc = roc_auc_score(anomalous, score)
    assert 0.6 < auc < 0.99
    assert page.figure("auc") == pytest.approx(auc, abs=5e-5)
    assert page.figure("pauc") == pytest.approx(
        roc_auc_score(anomalous, score, max_fpr=0.1), abs=5e-5
    )
    html = (tmp_path / "report" / "index.html").read_text()
    assert len(manifest.operating_points) >= 2
    for point in manifest.operating_points:
        flagged = score > point.thresholds["step"]
        assert page.figure(f"recall[{point.name}]") == pytest.approx(
            flagged[anomalous].mean(), abs=5e-5
        )
        assert page.figure(f"normal_flagged[{point.name}]") == pytest.approx(
            flagged[~anomalous].mean(), abs=5e-5
        )
        alarmed = sum(
            bool(flagged[part * STEPS + start : part * STEPS + stop].any())
            for part, (_, (start, stop), _, _) in enumerate(TEST_PARTS)
        )
        assert f"{alarmed} of 2" in html
        assert page.figure(f"false_alarms_per_1440_steps[{point.name}]") == pytest.approx(
            _false_alarms(flagged, anomalous) / (~anomalous).sum() * 1440, abs=5e-5
        )

"""`auscult train windows` and `auscult evaluate windows` end to end on generated CSV files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from service.bundle.loader import load_bundle
from service.bundle.manifest import WindowsManifest, read_history, read_manifest
from service.scoring.windows import WindowsScorer
from tests.training.windows.data_files import write_csv_data, write_smd
from training.cli import main

SMALL = ["--window", "20", "--stride", "10", "--train-stride", "5", "--epochs", "2"]


def test_train_then_evaluate_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    write_csv_data(data, steps=800)
    bundle = tmp_path / "bundle"
    argv = ["train", "windows", "--data", str(data), "--format", "csv", "--out", str(bundle)]
    assert main([*argv, *SMALL, "--threads", "1", "--name", "pump-7"]) == 0
    manifest = read_manifest(bundle)
    assert isinstance(manifest, WindowsManifest)
    # The default model: PCA's window score and kNN's step score, pooled no further.
    assert (manifest.name, manifest.model_type, manifest.data_format) == (
        "pump-7",
        "pca_knn",
        "csv",
    )
    assert manifest.model_settings["score_pooling"] == "step"
    assert manifest.evaluation is not None
    assert manifest.evaluation.n_anomaly == 40
    capsys.readouterr()

    assert (
        main(["evaluate", "windows", "--bundle", str(bundle), "--data", str(data), "--json"]) == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    for key in ("f1_pa", "f1", "precision", "recall", "auc_pr", "vus_pr", "pct_f1"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["n_steps"] == 800
    assert metrics["f1"] == pytest.approx(manifest.evaluation.f1)
    # The shifted channel over steps 300-339 is far out of line: it is found.
    assert metrics["recall"] > 0.5


def test_bad_arguments_get_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "windows", "--format", "smd", "--out", str(tmp_path / "b")]
    assert main([*argv, "--data", str(tmp_path)]) == 2
    assert "name one, e.g. machine-1-1" in capsys.readouterr().err
    assert main([*argv, "--data", str(tmp_path / "missing"), "--machine", "machine-1-1"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*argv, "--data", str(tmp_path), "--machine", "m", "--stride", "500"]) == 2
    assert "stride must lie in 1..window" in capsys.readouterr().err
    evaluate = ["evaluate", "windows", "--bundle", str(tmp_path / "none"), "--data", str(tmp_path)]
    assert main(evaluate) == 2
    assert "cannot read" in capsys.readouterr().err


def test_an_smd_machine_reports_how_often_the_named_channels_are_the_labelled_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_smd(tmp_path / "smd", "machine-1-1", steps=400)
    bundle = tmp_path / "bundle"
    argv = ["train", "windows", "--data", str(tmp_path / "smd"), "--format", "smd"]
    argv += ["--machine", "machine-1-1", "--model", "lstm_ae", "--out", str(bundle), *SMALL]
    assert main([*argv, "--no-evaluate"]) == 0
    manifest = read_manifest(bundle)
    assert isinstance(manifest, WindowsManifest)
    assert (manifest.data_subset, manifest.evaluation) == ("machine-1-1", None)
    capsys.readouterr()
    # --format and --machine come from the manifest.
    assert (
        main(["evaluate", "windows", "--bundle", str(bundle), "--data", str(tmp_path / "smd")]) == 0
    )
    table = capsys.readouterr().out
    assert "hit_rate_100" in table
    assert "vus_pr" in table


def _train_csv(tmp_path: Path, *extra: str) -> tuple[Path, Path, int]:
    data = tmp_path / "data"
    if not data.exists():
        write_csv_data(data, steps=800)
    bundle = tmp_path / "bundle"
    argv = ["train", "windows", "--data", str(data), "--format", "csv", "--out", str(bundle)]
    return data, bundle, main([*argv, *SMALL, *extra])


def _held_out_scores(data: Path, bundle: Path) -> np.ndarray:
    """The service's scores of the held-out tail of the training series, computed apart from
    the training code: 800 steps cut into blocks of 10 windows (200 steps) are too few blocks to
    interleave, so the last max(window, 20 %) = 160 steps are held out."""
    values = np.loadtxt(data / "train.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3))
    return WindowsScorer(load_bundle(bundle)).score(values[640:]).scores


def test_every_threshold_is_fitted_on_the_held_out_training_scores_alone(tmp_path: Path) -> None:
    data, bundle, code = _train_csv(tmp_path, "--quiet")
    assert code == 0
    manifest = read_manifest(bundle)
    assert isinstance(manifest, WindowsManifest)
    held_out = _held_out_scores(data, bundle)
    shape, _, scale = stats.gamma.fit(held_out, floc=0.0)
    gamma = stats.gamma.ppf(0.99, shape, scale=scale)
    assert manifest.step_decision.threshold == pytest.approx(gamma, rel=1e-3)
    assert manifest.step_threshold("gamma") == pytest.approx(gamma, rel=1e-3)
    percentile = np.percentile(held_out, 99)
    assert manifest.percentile_threshold == pytest.approx(percentile, rel=1e-3)
    assert manifest.step_threshold("percentile") == pytest.approx(percentile, rel=1e-3)
    # 160 held-out steps cannot resolve one alarm per 1,440 steps: the budget point flags none
    # of them, i.e. it sits at their highest score.
    assert manifest.step_threshold("false_alarm_rate") == pytest.approx(held_out.max(), rel=1e-3)
    for point in manifest.operating_points:
        assert (point.fit.method, point.fit.n_scores, point.fit.recordings) == ("held_out", 160, 1)
        # The predicted rate is the held-out alarm events per 1,440 steps.
        flagged = np.r_[False, held_out > point.thresholds["step"]]
        events = int(np.sum(flagged[1:] & ~flagged[:-1]))
        assert point.predicted["1440 steps"].rate == pytest.approx(events / 160 * 1440)
    # The false-alarm budget (one per 1,440 steps unless asked otherwise) is served by default.
    assert manifest.default_operating_point == "false_alarm_rate"


def test_a_false_alarm_budget_becomes_the_served_point(tmp_path: Path) -> None:
    _, bundle, code = _train_csv(tmp_path, "--quiet", "--false-alarm-rate", "50")
    assert code == 0
    manifest = read_manifest(bundle)
    assert isinstance(manifest, WindowsManifest)
    assert manifest.default_operating_point == "false_alarm_rate"
    point = next(p for p in manifest.operating_points if p.name == "false_alarm_rate")
    # No step interval for CSV: 50 per 10,000 steps; 160 held-out steps allow 0.8 events.
    assert point.target == 50
    assert point.predicted["10000 steps"].rate == 0.0
    assert "hour" not in point.predicted


def test_evaluate_reports_alarm_events_and_each_segments_first_alarm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, bundle, code = _train_csv(tmp_path, "--quiet", "--no-evaluate", "--step-seconds", "60")
    assert code == 0
    capsys.readouterr()
    argv = ["evaluate", "windows", "--bundle", str(bundle), "--data", str(data), "--json"]
    assert main([*argv, "--operating-point", "percentile"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["operating_point"] == "percentile"
    assert result["threshold"] == result["pct_threshold"]
    # Computed apart: the service's scores of the test series, flagged above the threshold.
    values = np.loadtxt(data / "test.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3))
    flagged = WindowsScorer(load_bundle(bundle)).score(values).scores > result["threshold"]
    labels = np.zeros(800, bool)
    labels[300:340] = True
    starts = [i for i in range(800) if flagged[i] and (i == 0 or not flagged[i - 1])]
    ends = [i for i in range(1, 801) if flagged[i - 1] and (i == 800 or not flagged[i])]
    false = sum(1 for s, e in zip(starts, ends, strict=True) if not labels[s:e].any())
    assert result["false_alarms"] == false
    assert result["false_alarms_per_1440_steps"] == pytest.approx(false / 760 * 1440)
    assert result["false_alarms_per_hour"] == pytest.approx(false / (760 / 60))
    first = int(np.flatnonzero(flagged[300:340])[0])
    assert result["segments"] == [{"start": 300, "end": 340, "first_alarm": first}]
    assert result["segments_alarmed"] == 1.0
    for prefix in ("gamma_", "pct_", "far_"):
        assert f"{prefix}false_alarms_per_1440_steps" in result
        assert f"{prefix}predicted_false_alarms_per_1440_steps" in result


def test_test_data_at_another_operating_point_is_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    write_csv_data(data, steps=800)
    # The test recording runs 10 units higher on every channel (the generated channels vary by
    # about 1): another operating point.
    lines = (data / "test.csv").read_text().splitlines()
    shifted = [lines[0]] + [
        ",".join([f[0], *(f"{float(v) + 10:.5f}" for v in f[1:-1]), f[-1]])
        for f in (line.split(",") for line in lines[1:])
    ]
    (data / "test.csv").write_text("\n".join(shifted) + "\n")
    _, _, code = _train_csv(tmp_path, "--quiet")
    assert code == 0
    err = capsys.readouterr().err
    assert "the test data of data runs at another operating point than the training data" in err
    assert "3 of 3 channels" in err


def test_an_existing_bundle_is_not_overwritten_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, bundle, code = _train_csv(tmp_path, "--quiet", "--no-evaluate")
    assert code == 0
    # The report is written by default.
    assert (bundle / "report" / "index.html").is_file()
    before = (bundle / "manifest.json").read_bytes()
    _, _, code = _train_csv(tmp_path, "--quiet", "--no-evaluate", "--seed", "3")
    assert code == 2
    assert "already holds a bundle" in capsys.readouterr().err
    assert (bundle / "manifest.json").read_bytes() == before
    _, _, code = _train_csv(
        tmp_path, "--quiet", "--no-evaluate", "--seed", "3", "--overwrite", "--no-report"
    )
    assert code == 0
    assert (bundle / "manifest.json").read_bytes() != before
    # No report, and not the old model's either.
    assert not (bundle / "report").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "0"], "argument --epochs: must be a positive whole number, got 0"),
        (["--batch-size", "-4"], "argument --batch-size: must be a positive whole number"),
        (["--lr", "0"], "argument --lr/--learning-rate: must be positive"),
        (["--r", "1.5"], "argument --r: must lie strictly between 0 and 1"),
        (["--false-alarm-rate", "0"], "argument --false-alarm-rate: must be positive"),
        (["--percentile", "100"], "argument --percentile: must lie strictly between 0 and 100"),
    ],
)
def test_nonsense_settings_are_refused_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    argv = ["train", "windows", "--data", str(tmp_path), "--format", "csv"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "b"), *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_a_window_longer_than_the_data_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    write_csv_data(data, steps=800)
    argv = ["train", "windows", "--data", str(data), "--format", "csv"]
    assert main([*argv, "--out", str(tmp_path / "b"), "--window", "5000", "--stride", "10"]) == 2
    err = capsys.readouterr().err
    assert "800 steps, fewer than two windows of 5000" in err
    assert "choose a --window of at most 400" in err
    assert "Traceback" not in err


def test_training_prints_readable_numbers_and_progress_unless_quiet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, bundle, code = _train_csv(tmp_path, "--no-evaluate", "--model", "distilled_student")
    assert code == 0
    out, err = capsys.readouterr()
    assert "epoch/s" in err  # the progress bars
    for text in (out, err):
        assert not re.search(r"\(\d+\.\d+,", text)  # no raw tuples
    assert re.search(r"^student: best epoch [12] of 2, validation loss \d+\.\d+$", out, re.M)
    assert "gamma (target 0.99): " in out
    history = read_history(bundle)
    assert history is not None
    assert [len(history.stages[s]) for s in ("teacher", "student")] == [2, 2]
    _, _, code = _train_csv(
        tmp_path, "--no-evaluate", "--quiet", "--overwrite", "--model", "distilled_student"
    )
    assert code == 0
    assert "epoch/s" not in capsys.readouterr().err


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "windows", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("steps per window (default: 100)", "most epochs (default: 8)", "(default: 1)"):
        assert shown in text
    assert "(default: None)" not in text


@pytest.mark.parametrize("model", ["pca", "kmeans", "knn", "pca_knn"])
def test_a_fitted_model_trains_and_the_manifest_records_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str
) -> None:
    data = tmp_path / "data"
    write_csv_data(data, steps=800)
    bundle = tmp_path / "bundle"
    argv = ["train", "windows", "--data", str(data), "--format", "csv", "--out", str(bundle)]
    # Without --score-pooling a fitted model scores each step with its window's mean error, the
    # ensemble with its members' own pooling.
    options = ["--model", model, "--quiet"]
    assert main([*argv, *SMALL, *options]) == 0
    manifest = read_manifest(bundle)
    assert isinstance(manifest, WindowsManifest)
    assert manifest.model_type == model
    assert manifest.model_settings["score_pooling"] == ("step" if model == "pca_knn" else "window")
    assert manifest.evaluation is not None
    assert (manifest.evaluation.recall or 0.0) > 0.5
    history = read_history(bundle)
    assert history is not None
    assert history.stages == {}
    page = (bundle / "report" / "index.html").read_text()
    assert "fitted without epochs (PCA, KMeansAD or kNN): it has no loss curve" in page
    out = capsys.readouterr().out
    assert f"{model}: fitted without epochs in " in out
    assert f"({model}; serves the false_alarm_rate point" in out

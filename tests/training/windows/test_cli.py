"""`auscult train windows` and `auscult evaluate windows` end to end on generated CSV files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.bundle.manifest import WindowsManifest, read_manifest
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
    assert (manifest.name, manifest.model_type, manifest.data_format) == (
        "pump-7",
        "distilled_student",
        "csv",
    )
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

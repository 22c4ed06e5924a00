"""`auscult train audio` then `auscult evaluate audio`, as real subprocesses on a tiny folder-layout
tree; bad requests end with a clear message and exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.bundle.manifest import AudioManifest, read_manifest
from tests.realdata import PROJECT_ROOT
from training.audio.synthetic import write_folder_tree
from training.cli import main as training_main

AUSCULT = Path(sys.executable).parent / "auscult"
QUICK = ["--epochs", "6", "--stage2-epochs", "4", "--patience", "3", "--quiet", "--threads", "1"]


def _auscult(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(AUSCULT), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder_tree(
        tmp_path_factory.mktemp("data") / "machine",
        normal=8,
        anomalies={"clicking": ("click", 3), "bearing_wear": ("bearing", 3)},
        seconds=4.0,
        seed=2,
    )


def test_train_then_evaluate_on_recordings_the_bundle_never_saw(
    machine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "machine-bundle"
    trained = _auscult(
        "train",
        "audio",
        "--data",
        machine,
        "--out",
        bundle,
        "--clip-seconds",
        "2",
        "--labeled-anomalies",
        "2",
        "--version",
        "2024.1",
        *QUICK,
    )
    assert trained.returncode == 0, trained.stderr
    assert "bundle written to" in trained.stdout
    assert "predicted false-alarm rate per clip" in trained.stdout
    assert "95% interval" in trained.stdout
    # 5 normal training recordings are fewer than the default minimum of 10: said in words.
    assert "warning: the thresholds rest on only 5 normal recordings" in trained.stdout
    assert sorted(p.name for p in bundle.iterdir()) == [
        "architecture.json",
        "history.json",
        "manifest.json",
        "model.onnx",
        "report",
        "split.json",
        "weights.safetensors",
    ]
    manifest = read_manifest(bundle)
    assert isinstance(manifest, AudioManifest)
    # The report is written by default, from the held-out recordings training evaluated on.
    assert f"report: {bundle / 'report' / 'index.html'}" in trained.stdout
    assert (bundle / "report" / "index.html").is_file()
    summary = json.loads((bundle / "report" / "summary.json").read_text())
    assert manifest.evaluation is not None
    assert summary["clips"] == {
        "normal": manifest.evaluation.n_normal,
        "anomalous": manifest.evaluation.n_anomaly,
    }
    assert (manifest.name, manifest.version, manifest.backbone) == (
        "machine-bundle",
        "2024.1",
        "block",
    )
    assert manifest.training.clip_seconds == 2.0
    assert manifest.evaluation is not None

    evaluated = _auscult("evaluate", "audio", "--bundle", bundle, "--data", machine, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "never saw" in evaluated.stdout
    figures = json.loads(evaluated.stdout.strip().splitlines()[-1])
    for key in ("auc", "pauc", "n_normal", "n_anomaly", "threshold", "precision", "recall", "f1"):
        assert key in figures
    # The default clip length is the bundle's, the default recordings those it never saw: the
    # figures are the ones training measured on its test split.
    assert (figures["n_normal"], figures["n_anomaly"]) == (
        manifest.evaluation.n_normal,
        manifest.evaluation.n_anomaly,
    )
    assert figures["auc"] == pytest.approx(manifest.evaluation.auc)
    assert manifest.default_operating_point == "false_alarm_rate"
    assert figures["threshold"] == manifest.thresholds()[0]
    assert figures["operating_point"] == "false_alarm_rate"
    assert set(figures["groups"]) == {"bearing_wear", "clicking"}

    assert (
        training_main(
            [
                "evaluate",
                "audio",
                "--bundle",
                str(bundle),
                "--data",
                str(machine),
                "--include-seen",
                "--json",
            ]
        )
        == 0
    )
    all_figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert all_figures["n_normal"] + all_figures["n_anomaly"] == 14 * 2  # 14 recordings of 4 s

    argv = ["evaluate", "audio", "--bundle", str(bundle), "--data", str(machine)]
    assert training_main([*argv, "--operating-point", "gamma", "--json"]) == 0
    gamma_figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert gamma_figures["threshold"] == manifest.clip_decision.threshold
    assert training_main([*argv, "--operating-point", "nonesuch"]) == 2
    assert "no operating point 'nonesuch'" in capsys.readouterr().err


def test_no_report_writes_only_the_bundle(machine: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    argv: list[str | Path] = ["--data", machine, "--out", bundle, "--clip-seconds", "2", *QUICK]
    trained = _auscult("train", "audio", *argv, "--epochs", "1", "--no-report")
    assert trained.returncode == 0, trained.stderr
    assert "report:" not in trained.stdout
    assert (bundle / "model.onnx").is_file()
    assert not (bundle / "report").exists()


def test_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        training_main(["train", "audio", "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    for flag in (
        "--labeled-anomalies N",
        "--r R",
        "--false-alarm-rate RATE",
        "--threshold-fit",
        "--min-threshold-recordings N",
        "--clip-seconds S",
        "--backbone",
        "--score",
        "--model",
        "--seed",
    ):
        assert flag in shown
    assert "--quiet" in shown
    assert "--no-report" in shown
    with pytest.raises(SystemExit):
        training_main(["evaluate", "audio", "--help"])
    shown = capsys.readouterr().out
    assert "--include-seen" in shown
    assert "--json" in shown
    assert "--operating-point NAME" in shown


@pytest.mark.parametrize(
    ("layout", "extra", "message"),
    [
        ("empty", [], "is empty"),
        ("loose", [], "cannot recognise the layout"),
        ("no_normal", [], "no normal recordings"),
        ("machine", ["--labeled-anomalies", "7"], "asked for 7 labelled anomalous recordings"),
    ],
)
def test_bad_training_requests_fail_with_a_clear_message(
    machine: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    layout: str,
    extra: list[str],
    message: str,
) -> None:
    data = {
        "machine": machine,
        "empty": tmp_path / "empty",
        "loose": tmp_path / "loose",
        "no_normal": tmp_path / "no_normal",
    }[layout]
    (tmp_path / "empty").mkdir()
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "a.wav").write_bytes((machine / "normal" / "rec_000.flac").read_bytes())
    (tmp_path / "no_normal" / "test").mkdir(parents=True)
    (tmp_path / "no_normal" / "test" / "anomaly_id_00_00000000.wav").write_bytes(b"RIFF")
    status = training_main(
        ["train", "audio", "--data", str(data), "--out", str(tmp_path / "b"), *extra]
    )
    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "b" / "model.onnx").exists()


def test_evaluating_a_missing_bundle_fails_with_a_clear_message(
    machine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = training_main(
        ["evaluate", "audio", "--bundle", str(tmp_path / "none"), "--data", str(machine)]
    )
    assert status == 2
    assert "cannot read" in capsys.readouterr().err

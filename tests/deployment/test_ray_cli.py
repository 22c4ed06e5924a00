"""`auscult serve-ray` refuses what it cannot deploy before starting Ray (no cluster here: the
deployment itself is tests/deployment/test_ray_serve.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cli import main


def test_a_missing_models_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve-ray", "--models", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_fewer_max_replicas_than_replicas_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve-ray", "--models", str(tmp_path), "--replicas", "3", "--max-replicas", "2"])
    assert code == 2
    assert "max_replicas 2 is below replicas 3" in capsys.readouterr().err


def test_autoscaling_options_reach_the_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.ray_serve.settings import RaySettings

    monkeypatch.setenv("AUSCULT_RAY_REPLICAS", "2")
    monkeypatch.setenv("AUSCULT_RAY_MAX_REPLICAS", "6")
    options = RaySettings(target_ongoing_requests=3).deployment_options()
    assert options["autoscaling_config"] == {
        "min_replicas": 2,
        "max_replicas": 6,
        "target_ongoing_requests": 3.0,
    }
    assert "num_replicas" not in options
    # max_replicas equal to replicas: a fixed count.
    assert RaySettings(max_replicas=2).deployment_options()["num_replicas"] == 2

"""The registry serves the newest valid version of each model and swaps bundles atomically."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import Metrics
from service.registry import ModelRegistry, version_key
from tests.bundle_factory import make_windows_bundle, write_broken_bundle
from tests.service.clips import small_audio_bundle


def _info(metrics: Metrics) -> dict[tuple[str, str], float]:
    body, _ = metrics.exposition()
    return {
        (s.labels["model"], s.labels["version"]): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == "auscult_model_info"
    }


def _reloads(metrics: Metrics, result: str) -> float | None:
    return metrics.registry.get_sample_value("auscult_model_reloads_total", {"result": result})


def test_versions_compare_numerically_within_text() -> None:
    ordered = ["1", "1.2", "1.9", "1.10", "2", "10", "v2", "v10"]
    assert sorted(reversed(ordered), key=version_key) == ordered


def test_the_newest_version_of_each_name_is_served(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "fan-9", name="fan", version="1.9")
    small_audio_bundle(tmp_path / "fan-10", name="fan", version="1.10")
    make_windows_bundle(tmp_path / "press", name="press", window=20)
    metrics = Metrics()
    registry = ModelRegistry(tmp_path, metrics)
    report = registry.refresh()
    assert len(report.loaded) == 3
    assert [(m.name, m.version, m.kind) for m in registry.served()] == [
        ("fan", "1.10", "audio"),
        ("press", "1", "windows"),
    ]
    fan, press = registry.get("fan"), registry.get("press")
    assert fan is not None
    assert press is not None
    assert (fan.audio_scorer is not None, fan.windows_scorer is None) == (True, True)
    assert (press.audio_scorer is None, press.windows_scorer is not None) == (True, True)
    assert _info(metrics) == {("fan", "1.10"): 1.0, ("press", "1"): 1.0}
    assert _reloads(metrics, "success") == 3


def test_equal_versions_are_ordered_by_creation_time(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    small_audio_bundle(tmp_path / "b-old", name="fan", version="3", created_at=now - timedelta(1))
    small_audio_bundle(tmp_path / "a-new", name="fan", version="3", created_at=now)
    registry = ModelRegistry(tmp_path, Metrics())
    registry.refresh()
    assert registry.get("fan").path.name == "a-new"  # type: ignore[union-attr]


def test_a_broken_new_bundle_is_refused_and_the_old_one_keeps_serving(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "fan-1", name="fan", version="1")
    metrics = Metrics()
    registry = ModelRegistry(tmp_path, metrics)
    registry.refresh()
    old = registry.get("fan")

    write_broken_bundle(tmp_path / "fan-2", "non_finite_output", name="fan", version="2")
    report = registry.refresh()
    assert report.loaded == []
    [refusal] = report.refused
    assert refusal.path.name == "fan-2"
    assert "non-finite" in refusal.error
    assert registry.get("fan") is old
    assert [r.path.name for r in registry.refused()] == ["fan-2"]
    assert _reloads(metrics, "failure") == 1

    # Refused once, it is not retried until its files change...
    assert registry.refresh().refused == []
    # ...and once they do (fixed), it is loaded and takes over.
    shutil.rmtree(tmp_path / "fan-2")
    small_audio_bundle(tmp_path / "fan-2", name="fan", version="2")
    assert [m.version for m in registry.refresh().loaded] == ["2"]
    assert registry.get("fan").version == "2"  # type: ignore[union-attr]
    assert registry.refused() == []
    assert _info(metrics) == {("fan", "1"): 0.0, ("fan", "2"): 1.0}


def test_a_bundle_still_being_copied_is_picked_up_once_complete(tmp_path: Path) -> None:
    write_broken_bundle(tmp_path / "fan", "model_missing", name="fan")
    registry = ModelRegistry(tmp_path, Metrics())
    [refusal] = registry.refresh().refused
    assert "model.onnx is missing" in refusal.error
    assert registry.get("fan") is None
    small_audio_bundle(tmp_path / "fan", name="fan")
    registry.refresh()
    assert registry.get("fan") is not None


def test_unchanged_bundles_are_not_reloaded(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "fan", name="fan")
    registry = ModelRegistry(tmp_path, Metrics())
    registry.refresh()
    first = registry.get("fan")
    report = registry.refresh()
    assert (report.loaded, report.refused, report.removed) == ([], [], [])
    assert registry.get("fan") is first


def test_removing_the_newest_bundle_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "fan-1", name="fan", version="1")
    small_audio_bundle(tmp_path / "fan-2", name="fan", version="2")
    registry = ModelRegistry(tmp_path, Metrics())
    registry.refresh()
    shutil.rmtree(tmp_path / "fan-2")
    assert [p.name for p in registry.refresh().removed] == ["fan-2"]
    assert registry.get("fan").version == "1"  # type: ignore[union-attr]


def test_hidden_folders_are_ignored_so_bundles_can_be_staged(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / ".incoming-fan", name="fan")
    registry = ModelRegistry(tmp_path, Metrics())
    registry.refresh()
    assert registry.served() == []
    (tmp_path / ".incoming-fan").rename(tmp_path / "fan")
    registry.refresh()
    assert registry.get("fan") is not None


def test_an_unreadable_models_folder_keeps_the_loaded_models(tmp_path: Path) -> None:
    models = tmp_path / "models"
    small_audio_bundle(models / "fan", name="fan")
    registry = ModelRegistry(models, Metrics())
    registry.refresh()
    models.rename(tmp_path / "elsewhere")
    registry.refresh()
    assert registry.get("fan") is not None
    assert registry.folder_error is not None
    assert "cannot read the models folder" in registry.folder_error


def test_refusals_name_the_bundle_folder_not_where_the_models_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    write_broken_bundle(models / "fan-2", "model_not_onnx", name="fan", version="2")
    write_broken_bundle(models / "pump", "model_missing", name="pump")
    write_broken_bundle(models / "press", "manifest_not_json", name="press")
    # A relative models folder too: the loader's messages may spell the path either way.
    monkeypatch.chdir(tmp_path)
    refusals = ModelRegistry(Path("models"), Metrics()).refresh().refused
    assert sorted(r.path.name for r in refusals) == ["fan-2", "press", "pump"]
    for refusal in refusals:
        assert str(tmp_path) not in refusal.error
        assert "models/" not in refusal.error
        assert refusal.path.name in refusal.error


def test_after_change_follows_the_first_refresh_and_each_load_or_removal(tmp_path: Path) -> None:
    changes: list[list[str]] = []
    registry = ModelRegistry(
        tmp_path, Metrics(), after_change=lambda: changes.append(_served(registry))
    )
    registry.refresh()  # the first, with nothing to load
    small_audio_bundle(tmp_path / "fan-1", name="fan", version="1")
    registry.refresh()
    registry.refresh()  # unchanged
    write_broken_bundle(tmp_path / "press", "model_not_onnx", name="press")
    registry.refresh()  # a refusal changes nothing that is held
    shutil.rmtree(tmp_path / "fan-1")
    registry.refresh()
    # Called once the served set is swapped: each call sees what the refresh left.
    assert changes == [[], ["fan 1"], []]


def _served(registry: ModelRegistry) -> list[str]:
    return [f"{model.name} {model.version}" for model in registry.served()]

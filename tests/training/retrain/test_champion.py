"""The bundle retraining starts from is the one the registry serves, and its successor's version
follows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.clips import small_audio_bundle
from training.retrain.champion import RetrainError, next_version, served_bundle


def test_the_newest_version_of_the_name_is_the_champion(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "a", name="fan", version="2")
    small_audio_bundle(tmp_path / "b", name="fan", version="10")
    small_audio_bundle(tmp_path / "c", name="pump", version="99")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")
    folder, manifest = served_bundle(tmp_path, "fan")
    assert (folder.name, manifest.version) == ("b", "10")


def test_a_missing_model_is_named(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "a", name="fan")
    with pytest.raises(RetrainError, match="no bundle named 'valve'"):
        served_bundle(tmp_path, "valve")


@pytest.mark.parametrize(
    ("version", "after"),
    [("1", "2"), ("9", "10"), ("1.9", "1.10"), ("v3-rc", "v4-rc"), ("a", "a.1")],
)
def test_next_version(version: str, after: str) -> None:
    assert next_version(version) == after

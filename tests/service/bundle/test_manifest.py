"""Manifests round-trip through write/read; corrupt, incomplete or inconsistent ones are refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.bundle.loader import BundleError, load_bundle
from service.bundle.manifest import (
    MANIFEST_FILE,
    ManifestError,
    read_manifest,
    write_manifest,
)
from tests.bundle_factory import make_audio_bundle, make_windows_bundle


def _edit(bundle_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = bundle_dir / MANIFEST_FILE
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document), encoding="utf-8")


@pytest.mark.parametrize("make", [make_audio_bundle, make_windows_bundle])
def test_manifest_round_trips(tmp_path: Path, make: Callable[..., Path]) -> None:
    original = read_manifest(make(tmp_path / "source"))
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    write_manifest(copy_dir, original)
    copied = read_manifest(copy_dir)
    assert copied == original
    assert type(copied) is type(original)


def _drop(field: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document.pop(field)


def _set(path: tuple[str | int, ...], value: object) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target: Any = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


AUDIO_PROBLEMS = [
    ("incomplete", _drop("clip_decision"), "clip_decision: Field required"),
    ("fmax above Nyquist", _set(("features", "fmax"), 9000.0), "above the Nyquist frequency 8000"),
    ("unknown kind", _set(("kind",), "video"), "does not match any of the expected tags"),
    ("wrong format_version", _set(("format_version",), 2), "format_version: Input should be 1"),
    ("unknown field", _set(("colour",), "red"), "colour: Extra inputs are not permitted"),
    ("win_length above n_fft", _set(("features", "win_length"), 4096), "win_length must not"),
    ("r of 1.5", _set(("clip_decision", "r"), 1.5), "clip_decision.r: Input should be less"),
]


@pytest.mark.parametrize(
    ("change", "reason"),
    [(change, reason) for _, change, reason in AUDIO_PROBLEMS],
    ids=[name for name, _, _ in AUDIO_PROBLEMS],
)
def test_inconsistent_audio_manifest_is_refused(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], reason: str
) -> None:
    bundle_dir = make_audio_bundle(tmp_path / "fan")
    _edit(bundle_dir, change)
    with pytest.raises(ManifestError, match="manifest is invalid") as caught:
        read_manifest(bundle_dir)
    assert reason in str(caught.value)
    with pytest.raises(BundleError) as refused:
        load_bundle(bundle_dir)
    assert reason in str(refused.value)
    assert str(bundle_dir) in str(refused.value)


WINDOWS_PROBLEMS = [
    ("stride above window", _set(("stride",), 500), "stride must not exceed window"),
    ("no channels", _set(("channels",), []), "channels: List should have at least 1 item"),
    ("zero std", _set(("channels", 0, "std"), 0.0), "channels.0.std: Input should be greater"),
]


@pytest.mark.parametrize(
    ("change", "reason"),
    [(change, reason) for _, change, reason in WINDOWS_PROBLEMS],
    ids=[name for name, _, _ in WINDOWS_PROBLEMS],
)
def test_inconsistent_windows_manifest_is_refused(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], reason: str
) -> None:
    bundle_dir = make_windows_bundle(tmp_path / "pump")
    _edit(bundle_dir, change)
    with pytest.raises(BundleError) as refused:
        load_bundle(bundle_dir)
    assert reason in str(refused.value)


def test_duplicate_channel_names_are_refused(tmp_path: Path) -> None:
    bundle_dir = make_windows_bundle(tmp_path / "pump")
    _edit(bundle_dir, lambda d: d["channels"][1].update(name=d["channels"][0]["name"]))
    with pytest.raises(ManifestError, match="channel names must be unique"):
        read_manifest(bundle_dir)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"name": "fan", ', "manifest is not valid JSON"),
        ("[1, 2, 3]", "manifest must be a JSON object"),
        (b"\xff\xfe\x00garbage", "manifest is not valid JSON"),
    ],
)
def test_corrupted_manifest_is_refused(tmp_path: Path, text: str | bytes, reason: str) -> None:
    bundle_dir = make_audio_bundle(tmp_path / "fan")
    path = bundle_dir / MANIFEST_FILE
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError, match=reason):
        read_manifest(bundle_dir)
    with pytest.raises(BundleError, match=reason):
        load_bundle(bundle_dir)

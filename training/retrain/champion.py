"""The bundle in service for a model name (the newest version, as the registry chooses it) and
the version its successor gets."""

from __future__ import annotations

import re
from pathlib import Path

from service.bundle.manifest import AudioManifest, ManifestError, read_manifest
from service.registry import version_key


class RetrainError(ValueError):
    """Retraining cannot run; the message says why and what to do."""


def served_bundle(models_dir: Path, name: str) -> tuple[Path, AudioManifest]:
    """The folder and manifest of the version of `name` the registry serves: highest version,
    then latest created_at, then folder name. Folders whose manifest is unreadable are skipped,
    as the registry refuses them."""
    try:
        children = sorted(p for p in Path(models_dir).iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise RetrainError(f"cannot read the models folder {models_dir}: {exc}") from exc
    found = []
    for folder in children:
        if not folder.is_dir():
            continue
        try:
            manifest = read_manifest(folder)
        except ManifestError:
            continue
        if manifest.name == name:
            found.append((folder, manifest))
    if not found:
        raise RetrainError(f"no bundle named {name!r} in {models_dir}")
    folder, manifest = max(
        found, key=lambda f: (version_key(f[1].version), f[1].created_at, f[0].name)
    )
    if not isinstance(manifest, AudioManifest):
        raise RetrainError(f"{name!r} is a {manifest.kind} model; retraining is for audio models")
    return folder, manifest


def next_version(version: str) -> str:
    """The version after `version`: its last number plus one ('1' -> '2', '1.9' -> '1.10'), or
    '.1' appended when it holds no number."""
    numbers = list(re.finditer(r"\d+", version))
    if not numbers:
        return f"{version}.1"
    last = numbers[-1]
    return f"{version[: last.start()]}{int(last.group()) + 1}{version[last.end() :]}"

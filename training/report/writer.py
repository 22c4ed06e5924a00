"""`write_report`: score a bundle's data through the bundle, draw the figures and write the page
into BUNDLE/report/ (or another folder), replacing an earlier report only once the new one is
complete."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from service.bundle.loader import load_bundle
from service.bundle.manifest import REPORT_DIR, AudioManifest, read_history
from training.report.audio_data import audio_report_data
from training.report.audio_page import audio_sections
from training.report.page import (
    INDEX_FILE,
    Section,
    bundle_section,
    points_section,
    render,
    training_section,
)
from training.report.windows_data import windows_report_data
from training.report.windows_page import windows_sections

SUMMARY_FILE = "summary.json"


def _replace(staging: Path, out: Path) -> None:
    """Put the finished report in place; the old one is moved aside first, then removed."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_report(
    bundle_dir: Path,
    data_dir: Path | None = None,
    out_dir: Path | None = None,
    clip_file: Path | None = None,
) -> Path:
    """Write the report of the bundle at `bundle_dir` and return its index.html. Without
    `data_dir` it shows only what the bundle holds (operating points, training history, one
    clip given as `clip_file`)."""
    bundle_dir = Path(bundle_dir)
    bundle = load_bundle(bundle_dir)
    history = read_history(bundle_dir)
    out = Path(out_dir) if out_dir is not None else bundle_dir / REPORT_DIR
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest = bundle.manifest
        kind_sections: list[Section]
        summary: dict[str, Any]
        if isinstance(manifest, AudioManifest):
            audio = audio_report_data(bundle, data_dir, clip_file)
            points = audio.points
            data = None if audio.held_out is None else audio.held_out.data
            kind_sections, summary = audio_sections(audio, staging)
        else:
            if clip_file is not None:
                raise ValueError("--clip applies to audio bundles only")
            windows = windows_report_data(bundle, data_dir)
            points = windows.points
            data = None if windows.test is None else windows.test.data
            kind_sections, summary = windows_sections(windows, staging)
        sections = [
            bundle_section(manifest, data),
            points_section(points, older=not manifest.operating_points),
            *kind_sections[:1],
            training_section(history, staging),
            *kind_sections[1:],
        ]
        title = f"{manifest.name} version {manifest.version}: {manifest.kind} bundle report"
        (staging / INDEX_FILE).write_text(render(title, sections), encoding="utf-8")
        summary = {"name": manifest.name, "version": manifest.version, "data": data, **summary}
        (staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        staging.chmod(0o755)
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out / INDEX_FILE

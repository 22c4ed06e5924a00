"""Bundles with two operating points for the tests of AUSCULT_OPERATING_POINT."""

from __future__ import annotations

from pathlib import Path

from service.bundle.manifest import (
    AudioManifest,
    OperatingPoint,
    ThresholdFit,
    read_manifest,
    write_manifest,
)


def with_operating_points(folder: Path, default: str | None = "lenient") -> Path:
    """Give the bundle two operating points: 'lenient' (gamma rule, thresholds x 1000) and
    'strict' (false-alarm-rate rule, thresholds / 1000)."""
    manifest = read_manifest(folder)
    base: dict[str, float]
    if isinstance(manifest, AudioManifest):
        base = {"clip": manifest.clip_decision.threshold}
        base["block"] = manifest.block_decision.threshold
    else:
        base = {"step": manifest.step_decision.threshold}
    fit = ThresholdFit(method="held_out", recordings=4, n_scores=100)
    points = [
        OperatingPoint(
            name="lenient",
            rule="gamma",
            target=0.999,
            thresholds={unit: value * 1000 for unit, value in base.items()},
            fit=fit,
        ),
        OperatingPoint(
            name="strict",
            rule="false_alarm_rate",
            target=0.5,
            thresholds={unit: value / 1000 for unit, value in base.items()},
            fit=fit,
        ),
    ]
    update = {"operating_points": points, "default_operating_point": default}
    write_manifest(folder, manifest.model_copy(update=update))
    return folder

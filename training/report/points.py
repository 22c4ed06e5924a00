"""The operating points a report shows: the bundle's own, or for bundles written before it kept
them, the Gamma decisions (and a windows bundle's percentile threshold) it does hold."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.bundle.manifest import (
    AudioManifest,
    FalseAlarmPrediction,
    GammaThreshold,
    WindowsManifest,
)


@dataclass(frozen=True)
class ShownPoint:
    """One set of thresholds, keyed by unit ('clip' and 'block', or 'step')."""

    name: str
    rule: str
    target: float
    thresholds: dict[str, float]
    fitted: str  # where the scores behind the thresholds came from, in words
    is_default: bool
    predicted: dict[str, FalseAlarmPrediction] = field(default_factory=dict)


def _gamma_words(decisions: dict[str, GammaThreshold]) -> str:
    return "; ".join(
        f"{unit}: {d.fitted_on} ({d.n_scores} scores)" for unit, d in decisions.items()
    )


def shown_points(manifest: AudioManifest | WindowsManifest) -> list[ShownPoint]:
    """Every operating point of the bundle, the one the service applies by default first."""
    if manifest.operating_points:
        default = manifest.default_operating_point or manifest.operating_points[0].name
        # A sensor fit's "recordings" are the held-out blocks of the training series.
        sources = "recordings" if isinstance(manifest, AudioManifest) else "blocks"
        points = [
            ShownPoint(
                name=point.name,
                rule=point.rule,
                target=point.target,
                thresholds=dict(sorted(point.thresholds.items())),
                fitted=(
                    f"{point.fit.method.replace('_', '-')}"
                    + (f" ({point.fit.folds} folds)" if point.fit.folds else "")
                    + f": {point.fit.n_scores} scores from {point.fit.recordings} {sources}"
                ),
                is_default=point.name == default,
                predicted=dict(point.predicted),
            )
            for point in manifest.operating_points
        ]
        return sorted(points, key=lambda p: not p.is_default)
    if isinstance(manifest, AudioManifest):
        decisions = {"block": manifest.block_decision, "clip": manifest.clip_decision}
        return [
            ShownPoint(
                name="gamma",
                rule="gamma",
                target=manifest.clip_decision.r,
                thresholds={unit: d.threshold for unit, d in decisions.items()},
                fitted=_gamma_words(decisions),
                is_default=True,
            )
        ]
    step = manifest.step_decision
    points = [
        ShownPoint(
            name="gamma",
            rule="gamma",
            target=step.r,
            thresholds={"step": step.threshold},
            fitted=_gamma_words({"step": step}),
            is_default=True,
        )
    ]
    if manifest.percentile_threshold is not None and manifest.percentile is not None:
        points.append(
            ShownPoint(
                name="percentile",
                rule="percentile",
                target=manifest.percentile,
                thresholds={"step": manifest.percentile_threshold},
                fitted=f"the same {step.n_scores} scores as the Gamma",
                is_default=False,
            )
        )
    return points

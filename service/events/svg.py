"""Geometry of the review page's two small charts, computed on the server and drawn as inline
SVG by the template: an event's block scores over time against the threshold, and its worst
block's error per mel band."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 360
HEIGHT = 110
_PAD = 6


def _scale(value: float, low: float, high: float, size: float) -> float:
    span = high - low or 1.0
    return (value - low) / span * size


@dataclass(frozen=True)
class ScoresChart:
    points: str  # the polyline's "x,y x,y ..."
    threshold_y: float
    alarms: list[tuple[float, float]]  # blocks above the threshold
    start_s: float
    end_s: float
    threshold: float


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


def scores_chart(blocks: Sequence[Sequence[float]], threshold: float) -> ScoresChart | None:
    """Block scores ([start_s, end_s, score]) against time, and the threshold."""
    if not blocks:
        return None
    t_low, t_high = min(b[0] for b in blocks), max(b[1] for b in blocks)
    s_high = max([*(b[2] for b in blocks), threshold]) * 1.05
    inner_w, inner_h = WIDTH - 2 * _PAD, HEIGHT - 2 * _PAD

    def point(t: float, s: float) -> tuple[float, float]:
        x = _PAD + _scale(t, t_low, t_high, inner_w)
        return round(x, 1), round(HEIGHT - _PAD - _scale(s, 0.0, s_high, inner_h), 1)

    points = [(point((b[0] + b[1]) / 2, b[2]), b[2]) for b in blocks]
    return ScoresChart(
        points=" ".join(f"{x},{y}" for (x, y), _ in points),
        threshold_y=point(t_low, threshold)[1],
        alarms=[xy for xy, score in points if score > threshold],
        start_s=t_low,
        end_s=t_high,
        threshold=threshold,
    )


def band_bars(errors: Sequence[float], band_hz: Sequence[float]) -> list[Bar]:
    """One bar per mel band, low bands left, heights relative to the largest error."""
    if not errors:
        return []
    high = max(errors) or 1.0
    inner_h = HEIGHT - 2 * _PAD
    width = (WIDTH - 2 * _PAD) / len(errors)
    bars = []
    for i, (error, hz) in enumerate(zip(errors, band_hz, strict=True)):
        height = _scale(error, 0.0, high, inner_h)
        bars.append(
            Bar(
                x=round(_PAD + i * width, 1),
                y=round(HEIGHT - _PAD - height, 1),
                width=round(max(width - 1, 1), 1),
                height=round(height, 1),
                title=f"{hz:.0f} Hz: {error:.4g}",
            )
        )
    return bars

"""Is this data at the operating point the model was trained at? Standardised with the training
statistics, normal data at the same operating point has channel means near 0 and standard
deviations near 1. A series whose channels sit many training standard deviations away (SKAB's
valve experiments against its anomaly-free recording: means of -39 and -57) is flagged at almost
every step whatever the model; saying so beats a silent wall of alarms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from service.bundle.manifest import ChannelStats

# A channel is off the training operating point when its standardised mean lies beyond this
# many training standard deviations, or it varies this many times more than in training.
MEAN_LIMIT = 3.0
SPREAD_LIMIT = 3.0
SHOWN = 4


@dataclass(frozen=True)
class ChannelShift:
    name: str
    mean: float  # in training standard deviations from the training mean
    spread: float  # standard deviation relative to training's


def channel_shifts(values: ArrayLike, stats: list[ChannelStats]) -> list[ChannelShift]:
    """Every channel of raw `values` [steps, channels] standardised with `stats`."""
    raw = np.asarray(values, dtype=np.float64)
    mean = np.array([c.mean for c in stats])
    std = np.array([c.std for c in stats])
    z = (raw - mean) / std
    return [
        ChannelShift(c.name, float(m), float(s))
        for c, m, s in zip(stats, z.mean(axis=0), z.std(axis=0), strict=True)
    ]


def off_operating_point(shifts: list[ChannelShift]) -> list[ChannelShift]:
    """The channels beyond the limits, the farthest first."""
    off = [s for s in shifts if abs(s.mean) > MEAN_LIMIT or s.spread > SPREAD_LIMIT]
    return sorted(off, key=lambda s: -max(abs(s.mean), s.spread))


def drift_warning(what: str, values: ArrayLike, stats: list[ChannelStats]) -> str | None:
    """A plain-words warning when `values` run at another operating point than the training
    data, or None when every channel is within the limits."""
    off = off_operating_point(channel_shifts(values, stats))
    if not off:
        return None
    shown = ", ".join(
        f"{s.name} {s.mean:+.1f} sd" if abs(s.mean) > MEAN_LIMIT else f"{s.name} x{s.spread:.1f}"
        for s in off[:SHOWN]
    )
    more = f" and {len(off) - SHOWN} more" if len(off) > SHOWN else ""
    return (
        f"{what} runs at another operating point than the training data: {len(off)} of "
        f"{len(stats)} channels lie beyond {MEAN_LIMIT:g} training standard deviations from "
        f"the training mean or vary over {SPREAD_LIMIT:g} times as much ({shown}{more}). "
        "Steps there may be flagged whatever they hold; if this is normal operation at another "
        "setting, train a bundle on normal data from that operating point (docs/TRAINING.md, "
        "'Sensor series: one bundle per operating point')."
    )

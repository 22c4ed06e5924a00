"""Events become labelled clips: one per event id, ordered by id, only the two labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from training.retrain.labels import LabelledClip, labelled_clips


@dataclass(frozen=True)
class _Event:
    event_id: str
    label: str
    audio_path: Path


def test_clips_are_one_per_event_in_id_order() -> None:
    events = [_Event("b", "anomaly", Path("/b.flac")), _Event("a", "normal", Path("/a.flac"))]
    assert labelled_clips(events) == [
        LabelledClip("a", "normal", Path("/a.flac")),
        LabelledClip("b", "anomaly", Path("/b.flac")),
    ]


def test_a_label_other_than_anomaly_or_normal_is_refused() -> None:
    with pytest.raises(ValueError, match="'maybe'"):
        labelled_clips([_Event("a", "maybe", Path("/a.flac"))])

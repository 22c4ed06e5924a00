"""The labelled clips retraining learns from: one event's audio and the operator's label."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

Label = Literal["anomaly", "normal"]


class LabelledEvent(Protocol):
    """What retraining needs of a labelled event of the event store."""

    @property
    def event_id(self) -> object: ...

    @property
    def label(self) -> str: ...

    @property
    def audio_path(self) -> Path | str: ...


@dataclass(frozen=True)
class LabelledClip:
    """An event's audio (as it was scored) and its label; `event_id` names it in a bundle's
    lineage."""

    event_id: str
    label: Label
    audio_path: Path

    @property
    def is_anomaly(self) -> bool:
        return self.label == "anomaly"


def labelled_clips(events: Iterable[LabelledEvent]) -> list[LabelledClip]:
    """One clip per event id (a relabelled event keeps its latest label, which the store
    returns), ordered by id so that folds do not depend on the store's order."""
    clips: dict[str, LabelledClip] = {}
    for event in events:
        if event.label not in ("anomaly", "normal"):
            raise ValueError(f"event {event.event_id} has label {event.label!r}")
        label: Label = "anomaly" if event.label == "anomaly" else "normal"
        clips[str(event.event_id)] = LabelledClip(
            str(event.event_id), label, Path(event.audio_path)
        )
    return [clips[key] for key in sorted(clips)]

"""Request and response models of the event API (/v1/events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from service.events.schema import EventRow


class EventOut(BaseModel):
    id: str
    time: datetime
    station: str | None
    model: str
    version: str = Field(description="the model version that gave the verdict")
    kind: Literal["audio", "sensor"]
    source: Literal["clip", "v2", "stream", "windows"] = Field(
        description="POST /score, /v2 inference, a WebSocket stream, or POST /windows"
    )
    score: float
    threshold: float
    ratio: float = Field(description="score / threshold: above 1 is an anomaly")
    verdict: Literal["anomaly", "normal"]
    span_start: float = Field(description="start of what the event covers: seconds or steps")
    span_end: float = Field(description="end of what the event covers: seconds or steps")
    worst: dict[str, Any] = Field(
        description="audio: the worst block and its worst mel band; sensor: the top channels"
    )
    evidence: bool = Field(description="whether its audio (FLAC) or window (.npy) is kept")
    label: Literal["anomaly", "normal"] | None
    label_note: str | None
    labelled_by: str | None
    labelled_at: datetime | None

    @classmethod
    def of(cls, row: EventRow) -> EventOut:
        return cls.model_validate(
            {
                **{name: getattr(row, name) for name in cls.model_fields if name != "evidence"},
                "evidence": row.evidence_path is not None,
            }
        )


class EventDetail(EventOut):
    detail: dict[str, Any] = Field(
        description="audio: block scores over time ([start_s, end_s, score]) and the worst "
        "block's error per mel band; sensor: per-step scores and the anomalous runs"
    )

    @classmethod
    def of(cls, row: EventRow) -> EventDetail:
        return cls.model_validate({**EventOut.of(row).model_dump(), "detail": row.detail})


class EventPageOut(BaseModel):
    events: list[EventOut] = Field(description="newest first")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class LabelIn(BaseModel):
    label: Literal["anomaly", "normal"] = Field(
        description="'anomaly': a real fault (a confirmed alarm); 'normal': nothing wrong "
        "(a false alarm)"
    )
    note: str | None = Field(None, max_length=2000, description="what the operator found")
    by: str | None = Field(None, max_length=128, description="who labelled it")

"""What a pipeline hands to the event store: one verdict worth keeping and its evidence."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from service.events.schema import Kind, Source


def new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class NewEvent:
    model: str
    version: str
    kind: Kind
    source: Source
    station: str | None
    score: float
    threshold: float
    ratio: float
    anomaly: bool
    span_start: float
    span_end: float
    worst: dict[str, Any]
    detail: dict[str, Any]
    # Audio at `sample_rate` (mono float32), or a sensor window (steps x channels); the store
    # decides whether to keep it.
    audio: np.ndarray | None = None
    sample_rate: int = 0
    window: np.ndarray | None = None
    id: str = field(default_factory=new_event_id)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

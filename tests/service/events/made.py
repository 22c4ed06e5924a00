"""Events as the pipelines would hand them over, for store tests that need many of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from service.events.records import NewEvent

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
RATE = 16000


def an_event(
    minute: float = 0.0, *, anomaly: bool = True, audio_seconds: float = 0.0, **fields: Any
) -> NewEvent:
    """An audio event `minute` minutes after T0; with audio of `audio_seconds` (a real tone)."""
    audio = None
    if audio_seconds > 0:
        t = np.arange(int(audio_seconds * RATE)) / RATE
        audio = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    values: dict[str, Any] = {
        "model": "fan",
        "version": "1",
        "kind": "audio",
        "source": "clip",
        "station": "line-1",
        "score": 2.0 if anomaly else 0.5,
        "threshold": 1.0,
        "ratio": 2.0 if anomaly else 0.5,
        "anomaly": anomaly,
        "span_start": 0.0,
        "span_end": audio_seconds,
        "worst": {"block": 0},
        "detail": {"block_threshold": 1.0, "blocks": [[0.0, 1.0, 0.5]]},
        "audio": audio,
        "sample_rate": RATE,
        "time": T0 + timedelta(minutes=minute),
    }
    return NewEvent(**{**values, **fields})

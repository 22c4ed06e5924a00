"""The read API retraining uses: an audio model's events that an operator labelled and whose
audio is still on disk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.events.database import open_migrated
from service.events.schema import EventRow, LabelName


@dataclass(frozen=True)
class LabelledAudioEvent:
    event_id: str
    model: str
    version: str  # the model version that scored it
    time: datetime
    label: LabelName  # the operator's: 'anomaly' (confirmed) or 'normal' (a false alarm)
    audio_path: Path  # absolute path of the FLAC at the model's sample rate, mono
    score: float
    verdict: str  # the model's: 'anomaly' or 'normal'


def labelled_audio_events(database_url: str, model: str) -> list[LabelledAudioEvent]:
    """Every labelled audio event of `model` with its FLAC present, oldest first."""
    engine = open_migrated(database_url)
    try:
        with Session(engine) as session:
            rows = session.scalars(
                select(EventRow)
                .where(
                    EventRow.model == model,
                    EventRow.kind == "audio",
                    EventRow.label.is_not(None),
                    EventRow.evidence_path.is_not(None),
                )
                .order_by(EventRow.time, EventRow.id)
            ).all()
    finally:
        engine.dispose()
    events = []
    for row in rows:
        path = Path(str(row.evidence_path))
        if not path.is_file():
            continue
        label: LabelName = "anomaly" if row.label == "anomaly" else "normal"
        events.append(
            LabelledAudioEvent(
                event_id=row.id,
                model=row.model,
                version=row.version,
                time=row.time,
                label=label,
                audio_path=path,
                score=row.score,
                verdict=row.verdict,
            )
        )
    return events

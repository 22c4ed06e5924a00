"""Evidence on disk: audio as FLAC, sensor windows as .npy, under the state folder; and the disk
quota, which evicts the oldest unlabelled normal evidence first, then the oldest unlabelled
alarms, and never labelled evidence."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from sqlalchemy import CursorResult, Engine, case, func, select, update
from sqlalchemy.orm import Session

from service.audio.decode import PCM16_FULL_SCALE
from service.events.records import NewEvent
from service.events.schema import EventRow

logger = logging.getLogger(__name__)
# Candidates looked at per query while evicting.
_EVICTION_BATCH = 200


def write_evidence(folder: Path, event: NewEvent) -> Path | None:
    """Write the event's audio or window under folder/<date>/; its path, or None if none."""
    if event.audio is None and event.window is None:
        return None
    day = folder / event.time.strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True)
    if event.audio is not None:
        path = day / f"{event.id}.flac"
        # 16-bit FLAC: lossless for what a microphone gives, a third of float WAV's size.
        # Encoded in memory and written in one go: soundfile's close fsyncs the file, which
        # cost more than the encoding, and evidence is no more durable than its database row.
        # The conversion to integers is numpy's, 20x faster than libsndfile's per sample; it is
        # the inverse of the decoder's x / 32768, so 16-bit audio comes back bit for bit.
        pcm = np.rint(event.audio * PCM16_FULL_SCALE)
        pcm = np.clip(pcm, -PCM16_FULL_SCALE, PCM16_FULL_SCALE - 1).astype(np.int16)
        encoded = io.BytesIO()
        sf.write(encoded, pcm, event.sample_rate, format="FLAC", subtype="PCM_16")
        path.write_bytes(encoded.getbuffer())
        return path
    path = day / f"{event.id}.npy"
    np.save(path, np.asarray(event.window, dtype=np.float32))
    return path


@dataclass(frozen=True)
class Eviction:
    event_id: str
    verdict: str
    freed_bytes: int


def evidence_bytes(engine: Engine) -> int:
    with Session(engine) as session:
        total = session.scalar(
            select(func.coalesce(func.sum(EventRow.evidence_bytes), 0)).where(
                EventRow.evidence_path.is_not(None)
            )
        )
    return int(total or 0)


def enforce_quota(engine: Engine, quota_bytes: int) -> list[Eviction]:
    """Evict unlabelled evidence, normal before alarms and oldest first, until the kept
    evidence fits the quota. An event labelled meanwhile is skipped: its row update is
    conditional on having no label, and the file goes only once the row no longer points to
    it."""
    total = evidence_bytes(engine)
    evicted: list[Eviction] = []
    while total > quota_bytes:
        with Session(engine) as session:
            candidates = session.execute(
                select(
                    EventRow.id, EventRow.verdict, EventRow.evidence_path, EventRow.evidence_bytes
                )
                .where(EventRow.evidence_path.is_not(None), EventRow.label.is_(None))
                .order_by(case((EventRow.verdict == "anomaly", 1), else_=0), EventRow.time)
                .limit(_EVICTION_BATCH)
            ).all()
        if not candidates:
            logger.warning(
                "evidence holds %d bytes, over the quota of %d, and all of it is labelled: "
                "raise AUSCULT_EVIDENCE_QUOTA_BYTES or remove labelled evidence by hand",
                total,
                quota_bytes,
            )
            break
        for event_id, verdict, path, size in candidates:
            with Session(engine) as session, session.begin():
                result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                    update(EventRow)
                    .where(
                        EventRow.id == event_id,
                        EventRow.label.is_(None),
                        EventRow.evidence_path.is_not(None),
                    )
                    .values(evidence_path=None)
                )
            if result.rowcount != 1 or path is None:  # labelled or evicted meanwhile
                continue
            Path(path).unlink(missing_ok=True)
            evicted.append(Eviction(event_id, verdict, size))
            total -= size
            if total <= quota_bytes:
                break
    return evicted

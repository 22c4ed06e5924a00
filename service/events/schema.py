"""The events table as a typed SQLAlchemy 2 model; migrations/ creates and evolves it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import JSON, DateTime, Dialect, Float, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

Kind = Literal["audio", "sensor"]
Source = Literal["clip", "v2", "stream", "windows"]
VerdictName = Literal["anomaly", "normal"]
LabelName = Literal["anomaly", "normal"]
VERDICTS: tuple[VerdictName, ...] = ("anomaly", "normal")
LABELS: tuple[LabelName, ...] = ("anomaly", "normal")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, also from SQLite, which keeps no time zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("event times must be aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class EventRow(Base):
    """One verdict kept: what was scored, by which model version, what it said, where its
    evidence lies and, once an operator judged it, their label."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    station: Mapped[str | None] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(8))
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    ratio: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(8), index=True)
    # What the event covers: seconds into the clip or stream (audio), steps (sensor).
    span_start: Mapped[float] = mapped_column(Float)
    span_end: Mapped[float] = mapped_column(Float)
    # Audio: the worst block's band errors and the mel band centres; sensor: the top channels.
    worst: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Per-block (audio) or per-step (sensor) scores over the event, for the review page.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Absolute path of the FLAC or .npy; NULL when none was kept or it was evicted.
    evidence_path: Mapped[str | None] = mapped_column(String(1024))
    evidence_bytes: Mapped[int] = mapped_column(Integer, default=0)
    label: Mapped[str | None] = mapped_column(String(8), index=True)
    label_note: Mapped[str | None] = mapped_column(Text)
    labelled_by: Mapped[str | None] = mapped_column(String(128))
    labelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_events_model_time", "model", "time"),
        # The rows holding evidence, with their sizes: the quota's sum reads only these.
        Index(
            "ix_events_evidence",
            "evidence_bytes",
            sqlite_where=text("evidence_path IS NOT NULL"),
            postgresql_where=text("evidence_path IS NOT NULL"),
        ),
    )

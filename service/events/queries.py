"""Reading and labelling events: filtered, newest-first pages with an opaque cursor; one event;
a label; and the counts behind the alarm precision of each model."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from service.events.schema import EventRow, LabelName

MAX_PAGE = 500


class BadCursorError(ValueError):
    """A cursor this service did not hand out."""


@dataclass(frozen=True)
class EventFilter:
    model: str | None = None
    station: str | None = None
    verdict: str | None = None
    # 'anomaly', 'normal', or 'none' for events nobody labelled yet.
    label: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class EventPage:
    events: list[EventRow]
    next_cursor: str | None  # None on the last page


def _aware(time: datetime) -> datetime:
    """A time without a zone is taken as UTC, the zone every event time is kept in."""
    return time if time.tzinfo is not None else time.replace(tzinfo=UTC)


def encode_cursor(row: EventRow) -> str:
    text = f"{row.time.astimezone(UTC).isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        time_text, event_id = text.split("|", 1)
        return _aware(datetime.fromisoformat(time_text)), event_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursorError(f"not a cursor from this service: {cursor!r}") from exc


def list_events(
    engine: Engine, where: EventFilter, *, limit: int, cursor: str | None = None
) -> EventPage:
    """Events matching `where`, newest first; at most `limit` (capped at MAX_PAGE) after the
    cursor. Keyset paging: a page is stable while new events arrive."""
    limit = max(1, min(limit, MAX_PAGE))
    query = select(EventRow)
    conditions = []
    if where.model is not None:
        conditions.append(EventRow.model == where.model)
    if where.station is not None:
        conditions.append(EventRow.station == where.station)
    if where.verdict is not None:
        conditions.append(EventRow.verdict == where.verdict)
    if where.label == "none":
        conditions.append(EventRow.label.is_(None))
    elif where.label is not None:
        conditions.append(EventRow.label == where.label)
    if where.since is not None:
        conditions.append(EventRow.time >= _aware(where.since))
    if where.until is not None:
        conditions.append(EventRow.time < _aware(where.until))
    if cursor is not None:
        after_time, after_id = decode_cursor(cursor)
        conditions.append(
            or_(
                EventRow.time < after_time,
                and_(EventRow.time == after_time, EventRow.id < after_id),
            )
        )
    query = query.where(*conditions).order_by(EventRow.time.desc(), EventRow.id.desc())
    with Session(engine) as session:
        rows = list(session.scalars(query.limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return EventPage(rows, encode_cursor(rows[-1]) if more else None)


def get_event(engine: Engine, event_id: str) -> EventRow | None:
    with Session(engine) as session:
        return session.get(EventRow, event_id)


def set_label(
    engine: Engine, event_id: str, label: LabelName, *, note: str | None, by: str | None
) -> EventRow | None:
    """Label the event (replacing any earlier label); the updated row, or None if unknown."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.execute(
            update(EventRow)
            .where(EventRow.id == event_id)
            .values(label=label, label_note=note, labelled_by=by, labelled_at=datetime.now(UTC))
        )
        return session.get(EventRow, event_id, populate_existing=True)


@dataclass(frozen=True)
class AlarmLabels:
    labelled: int
    confirmed: int

    @property
    def precision(self) -> float | None:
        return self.confirmed / self.labelled if self.labelled else None


def alarm_labels(engine: Engine, model: str | None = None) -> dict[str, AlarmLabels]:
    """Per model: how many of its alarms operators labelled, and how many they confirmed."""
    confirmed = func.sum(case((EventRow.label == "anomaly", 1), else_=0))
    query = (
        select(EventRow.model, func.count(), confirmed)
        .where(EventRow.verdict == "anomaly", EventRow.label.is_not(None))
        .group_by(EventRow.model)
    )
    if model is not None:
        query = query.where(EventRow.model == model)
    with Session(engine) as session:
        return {
            name: AlarmLabels(int(count), int(yes or 0))
            for name, count, yes in session.execute(query).all()
        }

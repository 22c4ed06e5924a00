"""The event store on SQLite and PostgreSQL: events written by the writer, labels round-trip
into rows and metrics, pages cover every event once, filters select, retraining reads labels."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import soundfile as sf

from service.config import Settings
from service.events.database import open_migrated
from service.events.labelled import labelled_audio_events
from service.events.queries import BadCursorError, EventFilter, get_event, list_events
from service.events.store import EventStore
from service.metrics import Metrics
from tests.service.events.made import RATE, T0, an_event


def _store(url: str, tmp_path: Path, metrics: Metrics, **settings: object) -> EventStore:
    values = {"database_url": url, "state_dir": tmp_path / "state", **settings}
    return EventStore.open(Settings.model_validate(values), metrics)


def _sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_migrations_apply_once(database_url: str) -> None:
    open_migrated(database_url).dispose()
    open_migrated(database_url).dispose()


def test_labels_round_trip_into_rows_metrics_and_retraining(
    database_url: str, tmp_path: Path
) -> None:
    metrics = Metrics()
    store = _store(database_url, tmp_path, metrics, event_normal_audio_fraction=0.0)
    try:
        alarm = an_event(1, audio_seconds=1.0)
        other_alarm = an_event(2, audio_seconds=1.0)
        normal = an_event(3, anomaly=False, audio_seconds=1.0)
        for event in (alarm, other_alarm, normal):
            assert store.submit(event)
        store.writer.flush()
        assert _sample(metrics, "auscult_events_stored_total", kind="audio", verdict="anomaly") == 2

        labelled = store.label(alarm.id, "anomaly", note="bearing noise", by="ana")
        assert labelled is not None
        row = get_event(store.engine, alarm.id)
        assert row is not None
        assert (row.label, row.label_note, row.labelled_by) == ("anomaly", "bearing noise", "ana")
        assert row.labelled_at is not None
        assert row.labelled_at.tzinfo is not None
        assert row.time == alarm.time
        assert _sample(metrics, "auscult_alarm_precision", model="fan") == 1.0

        store.label(other_alarm.id, "normal", note=None, by="bo")
        assert _sample(metrics, "auscult_alarms_labelled", model="fan") == 2
        assert _sample(metrics, "auscult_alarms_confirmed", model="fan") == 1
        assert _sample(metrics, "auscult_alarm_precision", model="fan") == 0.5
        assert (
            _sample(
                metrics,
                "auscult_event_labels_total",
                model="fan",
                verdict="anomaly",
                label="normal",
            )
            == 1
        )
        assert store.label("0" * 32, "normal", note=None, by=None) is None

        # The normal clip's audio was not sampled (fraction 0): it is not offered for retraining.
        assert get_event(store.engine, normal.id).evidence_path is None  # type: ignore[union-attr]
        store.label(normal.id, "normal", note=None, by="ana")
        kept = labelled_audio_events(database_url, "fan")
        assert [(e.event_id, e.label, e.verdict) for e in kept] == [
            (alarm.id, "anomaly", "anomaly"),
            (other_alarm.id, "normal", "anomaly"),
        ]
        assert kept[0].audio_path.is_absolute()
        audio, rate = sf.read(kept[0].audio_path)
        assert (rate, len(audio)) == (RATE, RATE)
        assert labelled_audio_events(database_url, "other-model") == []
    finally:
        store.close()


def test_pages_cover_every_event_once_newest_first(database_url: str, tmp_path: Path) -> None:
    store = _store(database_url, tmp_path, Metrics())
    try:
        # Two events share a time: the id breaks the tie, so neither is skipped nor repeated.
        events = [an_event(minute) for minute in (0, 1, 2, 3, 3, 4, 5)]
        for event in events:
            store.submit(event)
        store.writer.flush()
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = list_events(store.engine, EventFilter(), limit=3, cursor=cursor)
            seen += [row.id for row in page.events]
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert pages == 3
        expected = sorted(events, key=lambda e: (e.time, e.id), reverse=True)
        assert seen == [e.id for e in expected]
        with pytest.raises(BadCursorError):
            list_events(store.engine, EventFilter(), limit=3, cursor="not-a-cursor")
    finally:
        store.close()


def test_filters_select_by_model_station_verdict_label_and_time(
    database_url: str, tmp_path: Path
) -> None:
    store = _store(database_url, tmp_path, Metrics())
    try:
        fan_alarm = an_event(0)
        fan_normal = an_event(1, anomaly=False)
        pump_alarm = an_event(2, model="pump", station="line-2")
        for event in (fan_alarm, fan_normal, pump_alarm):
            store.submit(event)
        store.writer.flush()
        store.label(fan_alarm.id, "normal", note=None, by=None)

        def ids(**where: object) -> set[str]:
            page = list_events(store.engine, EventFilter(**where), limit=10)  # type: ignore[arg-type]
            return {row.id for row in page.events}

        assert ids(model="fan") == {fan_alarm.id, fan_normal.id}
        assert ids(station="line-2") == {pump_alarm.id}
        assert ids(verdict="anomaly") == {fan_alarm.id, pump_alarm.id}
        assert ids(label="normal") == {fan_alarm.id}
        assert ids(label="none") == {fan_normal.id, pump_alarm.id}
        assert ids(verdict="anomaly", label="none") == {pump_alarm.id}
        assert ids(since=T0 + timedelta(minutes=1)) == {fan_normal.id, pump_alarm.id}
        assert ids(until=T0 + timedelta(minutes=1)) == {fan_alarm.id}
        # A time without a zone is UTC, as the events' times are.
        naive = (T0 + timedelta(minutes=1)).replace(tzinfo=None)
        assert ids(since=naive) == {fan_normal.id, pump_alarm.id}
    finally:
        store.close()

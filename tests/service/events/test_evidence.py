"""Evidence within its quota: unlabelled normal audio goes first, oldest first, then unlabelled
alarms; labelled evidence stays whatever the quota; each eviction is counted."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from sqlalchemy import event, text

from service.config import Settings
from service.events.database import open_migrated
from service.events.evidence import enforce_quota, evidence_bytes
from service.events.queries import get_event
from service.events.store import EventStore
from service.metrics import Metrics
from tests.service.events.made import RATE, an_event


def test_quota_evicts_unlabelled_normal_then_alarms_and_never_labelled(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=database_url,
        state_dir=tmp_path / "state",
        event_normal_audio_fraction=1.0,
    )
    store = EventStore.open(settings, Metrics())
    try:
        labelled_normal = an_event(0, anomaly=False, audio_seconds=1.0)  # the oldest of all
        old_alarm = an_event(1, audio_seconds=1.0)
        old_normal = an_event(2, anomaly=False, audio_seconds=1.0)
        new_normal = an_event(3, anomaly=False, audio_seconds=1.0)
        new_alarm = an_event(4, audio_seconds=1.0)
        events = [labelled_normal, old_alarm, old_normal, new_normal, new_alarm]
        for event in events:
            store.submit(event)
        store.writer.flush()
        store.label(labelled_normal.id, "normal", note=None, by=None)
        paths = {e.id: Path(str(get_event(store.engine, e.id).evidence_path)) for e in events}  # type: ignore[union-attr]
        assert all(path.is_file() for path in paths.values())
        size = {event_id: path.stat().st_size for event_id, path in paths.items()}
        total = evidence_bytes(store.engine)
        assert total == sum(size.values())

        # One byte over: the oldest unlabelled normal clip goes, not the older labelled one.
        evicted = enforce_quota(store.engine, total - 1)
        assert [e.event_id for e in evicted] == [old_normal.id]
        assert not paths[old_normal.id].exists()
        assert get_event(store.engine, old_normal.id).evidence_path is None  # type: ignore[union-attr]

        # Nothing left but labelled evidence fits: every unlabelled file goes, normal first.
        evicted = enforce_quota(store.engine, 0)
        assert [e.event_id for e in evicted] == [new_normal.id, old_alarm.id, new_alarm.id]
        assert [e.verdict for e in evicted] == ["normal", "anomaly", "anomaly"]
        assert paths[labelled_normal.id].is_file()
        assert evidence_bytes(store.engine) == size[labelled_normal.id]
        assert enforce_quota(store.engine, 0) == []
    finally:
        store.close()


def test_writer_counts_evictions(tmp_path: Path) -> None:
    metrics = Metrics()
    settings = Settings(
        state_dir=tmp_path / "state", event_normal_audio_fraction=1.0, evidence_quota_bytes=1
    )
    store = EventStore.open(settings, metrics)
    try:
        store.submit(an_event(0, anomaly=False, audio_seconds=1.0))
        store.writer.flush()
        # Over a one-byte quota the unlabelled clip's own audio goes, and is counted.
        evicted = {"verdict": "normal"}
        assert metrics.registry.get_sample_value("auscult_evidence_evicted_total", evicted) == 1
        assert evidence_bytes(store.engine) == 0
    finally:
        store.close()


def test_sensor_windows_are_kept_as_npy(tmp_path: Path) -> None:
    store = EventStore.open(Settings(state_dir=tmp_path / "state"), Metrics())
    try:
        window = np.arange(12, dtype=np.float32).reshape(4, 3)
        event = an_event(0, kind="sensor", source="windows", window=window)
        store.submit(event)
        store.writer.flush()
        row = get_event(store.engine, event.id)
        assert row is not None
        assert row.evidence_path is not None
        assert row.evidence_path.endswith(".npy")
        assert np.array_equal(np.load(row.evidence_path), window)
    finally:
        store.close()


def test_alarm_audio_is_kept_as_flac_that_gives_back_the_decoded_samples(tmp_path: Path) -> None:
    # 16-bit audio as the decoder gives it (x / 32768, both extremes included) must come back
    # bit for bit, and float audio beyond full scale clipped rather than wrapped around.
    rng = np.random.default_rng(0)
    pcm = rng.integers(-32768, 32768, size=RATE, dtype=np.int16)
    pcm[:2] = [-32768, 32767]
    decoded = pcm.astype(np.float32) / np.float32(32768)
    loud = np.array([1.5, -1.5, 0.25], dtype=np.float32)
    store = EventStore.open(Settings(state_dir=tmp_path / "state"), Metrics())
    try:
        events = [
            dataclasses.replace(an_event(0), audio=decoded, sample_rate=RATE),
            dataclasses.replace(an_event(1), audio=loud, sample_rate=RATE),
        ]
        for event in events:
            store.submit(event)
        store.writer.flush()
        kept = []
        for event in events:
            row = get_event(store.engine, event.id)
            assert row is not None
            assert row.evidence_path is not None
            assert row.evidence_path.endswith(".flac")
            assert row.evidence_bytes == Path(row.evidence_path).stat().st_size
            samples, rate = sf.read(row.evidence_path, dtype="int16")
            assert rate == RATE
            kept.append(samples)
        np.testing.assert_array_equal(kept[0], pcm)
        np.testing.assert_array_equal(kept[1], [32767, -32768, 8192])
    finally:
        store.close()


def test_the_quota_sum_reads_only_the_rows_that_hold_evidence(database_url: str) -> None:
    """The writer sums the evidence every few seconds while it keeps any; the table grows by a
    row for every clip scored, the evidence rows stay within the quota. The sum reads a
    partial index of those rows (migration 0002), never the whole table."""
    engine = open_migrated(database_url)
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    try:
        event.listen(engine, "before_cursor_execute", record)
        assert evidence_bytes(engine) == 0
        event.remove(engine, "before_cursor_execute", record)
        [(statement, parameters)] = statements
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                assert "INDEX ix_events_evidence" in " ".join(str(r) for r in plan)
                definition = connection.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = 'ix_events_evidence'")
                ).scalar_one()
                assert definition.endswith("(evidence_bytes) WHERE evidence_path IS NOT NULL")
            else:
                # PostgreSQL's planner picks by cost (a seq scan on an empty table): the index
                # and its condition are what is checked there.
                definition = connection.execute(
                    text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_events_evidence'")
                ).scalar_one()
                assert "(evidence_bytes) WHERE (evidence_path IS NOT NULL)" in definition
    finally:
        engine.dispose()

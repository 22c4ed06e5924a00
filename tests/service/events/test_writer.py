"""The writer never blocks a caller: with the database held by someone else, a full queue drops
events and counts them, and what was queued is written once the database frees up."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from service.config import Settings
from service.events.queries import MAX_PAGE, EventFilter, list_events
from service.events.store import EventStore
from service.events.writer import BATCH_SIZE
from service.metrics import Metrics
from tests.service.events.made import an_event
from tests.service.priorities import linux_only, lowered, priority_of


def test_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    metrics = Metrics()
    state = tmp_path / "state"
    store = EventStore.open(Settings(state_dir=state, event_queue_size=2), metrics)
    # Another process's write transaction: the writer's insert waits on it.
    holder = sqlite3.connect(state / "events.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    submitted = 3 * BATCH_SIZE
    try:
        accepted = [store.submit(an_event(i / 1000)) for i in range(submitted)]
        dropped = metrics.registry.get_sample_value(
            "auscult_events_dropped_total", {"reason": "queue_full"}
        )
        # The writer holds at most one batch and the queue two events: the rest is dropped.
        assert accepted.count(False) >= submitted - BATCH_SIZE - 2
        assert dropped == accepted.count(False)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    try:
        store.writer.flush()
        written = list_events(store.engine, EventFilter(), limit=MAX_PAGE).events
        assert len(written) == accepted.count(True)
    finally:
        store.close()


@linux_only
def test_the_writer_runs_nice_below_the_thread_that_opens_the_store(tmp_path: Path) -> None:
    base = priority_of()
    before = set(threading.enumerate())
    settings = Settings(state_dir=tmp_path / "state", worker_threads_nice=7)
    store = EventStore.open(settings, Metrics())
    try:
        store.submit(an_event(0.0))
        store.writer.flush()  # the writer has run since it started
        writers = [t for t in set(threading.enumerate()) - before if t.name == "event-writer"]
        assert [priority_of(writer) for writer in writers] == [lowered(base, 7)]
    finally:
        store.close()

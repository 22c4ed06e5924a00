"""The event writer: a bounded queue that requests put events on without ever waiting, and one
thread that writes their evidence and inserts them in batches. A full queue drops the event and
counts it, so a slow disk or database never slows scoring."""

from __future__ import annotations

import dataclasses
import logging
import queue
import random
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from service.events.evidence import Eviction, enforce_quota, write_evidence
from service.events.records import NewEvent
from service.events.schema import EventRow
from service.metrics import Metrics
from service.thread_priority import lower_current_thread

logger = logging.getLogger(__name__)

# Most events inserted in one transaction.
BATCH_SIZE = 256
BATCH_LINGER_SECONDS = 0.25
# Evidence may run over its quota for this long before the oldest files go.
QUOTA_CHECK_SECONDS = 5.0
_STOP = None
# What the queue holds: an event, a flush marker (set once what precedes it is written) or _STOP.
_Item = NewEvent | threading.Event | None


class EventWriter:
    def __init__(
        self,
        engine: Engine,
        evidence_dir: Path,
        *,
        queue_size: int,
        normal_audio_fraction: float,
        quota_bytes: int,
        metrics: Metrics,
        nice: int = 0,
    ) -> None:
        self._engine = engine
        self._evidence_dir = evidence_dir
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=queue_size)
        self._normal_audio_fraction = normal_audio_fraction
        self._quota_bytes = quota_bytes
        self._metrics = metrics
        self._next_quota_check = 0.0
        self._wake = threading.Event()  # set by a flush or stop: the batch ends now
        for reason in ("queue_full", "write_error"):
            # Touch the series at zero, so a rate() over them exists from the start.
            metrics.events_dropped.labels(reason)
        self._nice = nice
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    def submit(self, event: NewEvent) -> bool:
        """Queue the event without blocking; False (and counted) when the queue is full. Audio
        that will not be kept is let go here, so that the queue holds only what is written."""
        if event.audio is not None and not self.keeps_audio(event.anomaly):
            event = dataclasses.replace(event, audio=None)
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._metrics.events_dropped.labels("queue_full").inc()
            return False
        return True

    def keeps_audio(self, anomaly: bool) -> bool:
        """Whether a verdict's audio is kept: always for alarms, a sample of normal ones."""
        return anomaly or random.random() < self._normal_audio_fraction

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        # Blocking here is fine: no request is served any more.
        self._queue.put(_STOP)
        self._wake.set()
        self._thread.join(timeout_s)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every event queued so far is written (tests and benchmarks)."""
        done = threading.Event()
        self._queue.put(done)
        self._wake.set()
        done.wait(timeout_s)

    def _run(self) -> None:
        # Encoding an alarm storm's evidence must not take the CPU from the event loop either.
        lower_current_thread(self._nice)
        while True:
            batch = self._next_batch()
            events = [item for item in batch if isinstance(item, NewEvent)]
            if events:
                try:
                    self._write(events)
                except Exception:  # a failed batch must not stop the writer; it is logged
                    logger.exception("writing %d events failed", len(events))
                    self._metrics.events_dropped.labels("write_error").inc(len(events))
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if any(item is None for item in batch):
                return

    def _next_batch(self) -> list[_Item]:
        """The next item, and what follows it within BATCH_LINGER_SECONDS: a transaction costs
        about as much as the rows in it, so events a moment apart share one. The writer sleeps
        through the linger rather than waiting on the queue, which would wake it (and take the
        GIL from scoring) for every event; a flush or stop cuts the sleep short."""
        batch = [self._queue.get()]
        if isinstance(batch[-1], NewEvent):
            self._wake.wait(BATCH_LINGER_SECONDS)
            self._wake.clear()
        while len(batch) < BATCH_SIZE and isinstance(batch[-1], NewEvent):
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, events: list[NewEvent]) -> None:
        rows = [self._row(event) for event in events]
        try:
            # One executemany, not ORM objects: a third of the writer's time per event.
            with self._engine.begin() as connection:
                connection.execute(insert(EventRow), rows)
        except Exception:
            # No row points to these files: they would only fill the quota.
            for row in rows:
                if row["evidence_path"] is not None:
                    Path(row["evidence_path"]).unlink(missing_ok=True)
            raise
        for row in rows:
            self._metrics.events_stored.labels(row["kind"], row["verdict"]).inc()
        wrote_evidence = any(row["evidence_path"] is not None for row in rows)
        # The quota's sum over the table is not free: checked at most every few seconds.
        if wrote_evidence and time.monotonic() >= self._next_quota_check:
            self._next_quota_check = time.monotonic() + QUOTA_CHECK_SECONDS
            try:
                self._count_evictions(enforce_quota(self._engine, self._quota_bytes))
            except Exception:  # the events are stored; the next check tries again
                logger.exception("keeping the evidence within its quota failed")

    def _count_evictions(self, evictions: list[Eviction]) -> None:
        for eviction in evictions:
            self._metrics.evidence_evicted.labels(eviction.verdict).inc()

    def _row(self, event: NewEvent) -> dict[str, Any]:
        path = write_evidence(self._evidence_dir, event)
        return {
            "id": event.id,
            "time": event.time,
            "station": event.station,
            "model": event.model,
            "version": event.version,
            "kind": event.kind,
            "source": event.source,
            "score": event.score,
            "threshold": event.threshold,
            "ratio": event.ratio,
            "verdict": "anomaly" if event.anomaly else "normal",
            "span_start": event.span_start,
            "span_end": event.span_end,
            "worst": event.worst,
            "detail": event.detail,
            "evidence_path": str(path) if path is not None else None,
            "evidence_bytes": path.stat().st_size if path is not None else 0,
            "label": None,
            "label_note": None,
            "labelled_by": None,
            "labelled_at": None,
        }

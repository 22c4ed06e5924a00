"""One app's event store: the migrated database, the writer thread, and the label metrics kept in
step with the database."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy import Engine

from service.config import Settings
from service.events.database import default_database_url, open_migrated
from service.events.queries import alarm_labels, set_label
from service.events.records import NewEvent
from service.events.schema import EventRow, LabelName
from service.events.writer import EventWriter
from service.metrics import Metrics

logger = logging.getLogger(__name__)

# Labels given through another worker or replica reach this one's gauges within this time.
METRICS_REFRESH_SECONDS = 30.0


class EventStore:
    def __init__(self, engine: Engine, evidence_dir: Path, settings: Settings, metrics: Metrics):
        self.engine = engine
        self.evidence_dir = evidence_dir
        self._metrics = metrics
        self.writer = EventWriter(
            engine,
            evidence_dir,
            queue_size=settings.event_queue_size,
            normal_audio_fraction=settings.event_normal_audio_fraction,
            quota_bytes=settings.evidence_quota_bytes,
            metrics=metrics,
            nice=settings.worker_threads_nice,
        )
        self.refresh_alarm_metrics()
        self._stop = threading.Event()
        self._refresher = threading.Thread(
            target=self._refresh_until_closed, name="event-metrics", daemon=True
        )
        self._refresher.start()

    @classmethod
    def open(cls, settings: Settings, metrics: Metrics) -> EventStore:
        """Migrate the database (AUSCULT_DATABASE_URL or the state folder's SQLite file) and
        start the writer."""
        url = settings.database_url or default_database_url(settings.state_dir)
        return cls(open_migrated(url), settings.state_dir / "evidence", settings, metrics)

    def submit(self, event: NewEvent) -> bool:
        """Never blocks: False when the event was dropped (the queue is full)."""
        return self.writer.submit(event)

    def label(
        self, event_id: str, label: LabelName, *, note: str | None, by: str | None
    ) -> EventRow | None:
        row = set_label(self.engine, event_id, label, note=note, by=by)
        if row is not None:
            self._metrics.event_labels.labels(row.model, row.verdict, label).inc()
            self.refresh_alarm_metrics(row.model)
        return row

    def refresh_alarm_metrics(self, model: str | None = None) -> None:
        """Set the alarm precision gauges from the database (all models, or one)."""
        for name, counts in alarm_labels(self.engine, model).items():
            self._metrics.alarms_labelled.labels(name).set(counts.labelled)
            self._metrics.alarms_confirmed.labels(name).set(counts.confirmed)
            if counts.precision is not None:
                self._metrics.alarm_precision.labels(name).set(counts.precision)

    def _refresh_until_closed(self) -> None:
        while not self._stop.wait(METRICS_REFRESH_SECONDS):
            try:
                self.refresh_alarm_metrics()
            except Exception:  # the database may be away for a while; the next try may work
                logger.exception("reading alarm labels for the metrics failed")

    def close(self) -> None:
        self._stop.set()
        self._refresher.join()
        self.writer.close()
        self.engine.dispose()

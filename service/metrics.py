"""Every Prometheus metric the service exports, in one place (names in docs/ARCHITECTURE.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

Stage = Literal["decode", "features", "model"]
Source = Literal["clip", "stream", "windows"]

_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Dense around 1, where a verdict flips.
_RATIO_BUCKETS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    """The shared folder of prometheus-client's multiprocess mode, when it is on."""
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """The metrics of one app, in a registry of its own so that many apps can live in a process.

    In multiprocess mode (PROMETHEUS_MULTIPROC_DIR set before prometheus_client is imported) the
    values go to files in that folder and `exposition` sums every worker's.
    """

    def __init__(self, stations: Sequence[str] = ()) -> None:
        self._stations = frozenset(stations)
        self.registry = CollectorRegistry()
        registry = self.registry
        self.http_requests = Counter(
            "auscult_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "auscult_http_request_duration_seconds",
            "Time from receiving a request to finishing its response.",
            ["route", "method"],
            buckets=_REQUEST_BUCKETS,
            registry=registry,
        )
        self.stage_duration = Histogram(
            "auscult_stage_duration_seconds",
            "Time spent in each scoring stage: decode (and resample), features, model.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.scored = Counter(
            "auscult_scored",
            "Verdicts given: clips, stream blocks or sensor windows.",
            ["model", "station", "source"],
            registry=registry,
        )
        self.anomalies = Counter(
            "auscult_anomalies",
            "Verdicts that were anomalies.",
            ["model", "station", "source"],
            registry=registry,
        )
        self.score_ratio = Histogram(
            "auscult_score_ratio",
            "Score divided by the decision threshold; above 1 is an anomaly.",
            ["model"],
            buckets=_RATIO_BUCKETS,
            registry=registry,
        )
        self.model_info = Gauge(
            "auscult_model_info",
            "1 for each model version being served, 0 once it was replaced or removed.",
            ["model", "version", "kind"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.connections_rebalanced = Counter(
            "auscult_http_connections_rebalanced",
            "HTTP connections closed after an answer (Connection: close) because their worker "
            "held more than its share of the server's connections.",
            registry=registry,
        )
        self.websocket_connections = Gauge(
            "auscult_websocket_connections",
            "Open WebSocket streams.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.frames_dropped = Counter(
            "auscult_websocket_frames_dropped",
            "Stream frames refused, by reason.",
            ["model", "reason"],
            registry=registry,
        )
        self.model_reloads = Counter(
            "auscult_model_reloads",
            "Bundles loaded (success) or refused (failure).",
            ["result"],
            registry=registry,
        )
        self.pool_rejections = Counter(
            "auscult_pool_rejections",
            "Work refused with 503 because the scoring pool was full.",
            registry=registry,
        )
        # The MQTT bridge (service/mqtt/): its streams count in auscult_scored_total like the
        # WebSocket's (source="stream"); these say what only a broker connection has.
        self.mqtt_messages = Counter(
            "auscult_mqtt_messages",
            "MQTT messages received (direction=in, kind=sensor|sensor_f32|audio|other) and "
            "published (direction=out, kind=verdicts|alarms|errors).",
            ["direction", "kind"],
            registry=registry,
        )
        self.mqtt_dropped = Counter(
            "auscult_mqtt_messages_dropped",
            "MQTT messages dropped, by reason: backlog_full (results), input_backlog_full, "
            "duplicate (a redelivered seq) or the error code sent for refused input.",
            ["reason"],
            registry=registry,
        )
        self.mqtt_connected = Gauge(
            "auscult_mqtt_connected",
            "1 while the bridge is connected to its broker.",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.mqtt_reconnects = Counter(
            "auscult_mqtt_reconnects",
            "Times the bridge lost or could not reach its broker and tried again.",
            registry=registry,
        )
        self.mqtt_streams = Gauge(
            "auscult_mqtt_streams",
            "Open MQTT bridge streams.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.mqtt_backlog = Gauge(
            "auscult_mqtt_backlog",
            "Result messages waiting to be published.",
            multiprocess_mode="livesum",
            registry=registry,
        )

        # The event store (service/events/).
        self.events_stored = Counter(
            "auscult_events_stored",
            "Events written to the event database, by kind and the model's verdict.",
            ["kind", "verdict"],
            registry=registry,
        )
        self.events_dropped = Counter(
            "auscult_events_dropped",
            "Events not stored: queue_full (the writer fell behind) or write_error.",
            ["reason"],
            registry=registry,
        )
        self.evidence_evicted = Counter(
            "auscult_evidence_evicted",
            "Unlabelled evidence files removed to keep within the disk quota, by verdict.",
            ["verdict"],
            registry=registry,
        )
        self.event_labels = Counter(
            "auscult_event_labels",
            "Labels operators gave events, by model, the model's verdict and the label.",
            ["model", "verdict", "label"],
            registry=registry,
        )
        # From the database, so every worker exports the same values: the latest write wins.
        self.alarms_labelled = Gauge(
            "auscult_alarms_labelled",
            "Alarms of the model that an operator labelled.",
            ["model"],
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.alarms_confirmed = Gauge(
            "auscult_alarms_confirmed",
            "Alarms of the model that an operator labelled anomaly (confirmed).",
            ["model"],
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        self.alarm_precision = Gauge(
            "auscult_alarm_precision",
            "Operator-judged precision of the model's alarms: confirmed / labelled alarms.",
            ["model"],
            multiprocess_mode="mostrecent",
            registry=registry,
        )

    def station_label(self, station: str | None) -> str:
        """Keep the `station` label bounded: allow-listed names, else 'other' or 'unknown'."""
        if station is None or station == "":
            return "unknown"
        return station if station in self._stations else "other"

    @contextmanager
    def time_stage(self, stage: Stage) -> Iterator[None]:
        with self.stage_duration.labels(stage).time():
            yield

    def record_verdicts(
        self,
        model: str,
        station: str | None,
        source: Source,
        anomalies: Sequence[bool],
        ratios: Sequence[float],
    ) -> None:
        """Count verdicts and observe their score / threshold ratios."""
        label = self.station_label(station)
        self.scored.labels(model, label, source).inc(len(anomalies))
        # Touch the series even at zero, so a rate() over it exists from the first verdict.
        self.anomalies.labels(model, label, source).inc(sum(bool(a) for a in anomalies))
        histogram = self.score_ratio.labels(model)
        for ratio in ratios:
            histogram.observe(ratio)

    def exposition(self) -> tuple[bytes, str]:
        """The text format body and its content type."""
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(merged), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """Forget this process's live gauges when it stops (multiprocess mode only)."""
        directory = multiprocess_dir()
        if directory is not None:
            mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]

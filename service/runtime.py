"""What one running app holds between start-up and shutdown: its settings, metrics, registry,
scoring pool, stream slots and readiness. The lifespan creates it; requests reach it through
their typed lifespan state."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from service.concurrency import BoundedPool
from service.config import Settings
from service.connection_balance import ConnectionBalance
from service.events.store import EventStore
from service.metrics import Metrics
from service.registry import ModelRegistry
from service.scoring.batching import StreamBatcher
from service.worker_sync import ReloadSync, WorkerSync

# Makes the ReloadSync of an app other than `auscult serve`'s (Ray Serve replicas).
SyncFactory = Callable[[ModelRegistry, Metrics], ReloadSync]


class StreamSlots:
    """Counts open WebSocket streams against the configured limit and exports the gauge."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self._metrics = metrics
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        return self._open

    def try_acquire(self) -> bool:
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
        self._metrics.websocket_connections.inc()
        return True

    def release(self) -> None:
        with self._lock:
            self._open -= 1
        self._metrics.websocket_connections.dec()


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    registry: ModelRegistry
    pool: BoundedPool
    streams: StreamSlots
    # Stream frames are scored here, in batches across streams, never in the request pool.
    stream_batcher: StreamBatcher
    worker_sync: ReloadSync
    # This worker's HTTP connections against the other workers' (service/http_protocol.py).
    connections: ConnectionBalance
    # None when AUSCULT_EVENTS_ENABLED is off.
    events: EventStore | None = None
    # Set on SIGTERM (see service/server.py): /readyz answers 503 while requests still work.
    draining: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(
        cls, settings: Settings, metrics: Metrics, sync_factory: SyncFactory | None = None
    ) -> Runtime:
        registry = ModelRegistry.configured(settings, metrics)
        return cls(
            settings=settings,
            metrics=metrics,
            registry=registry,
            pool=BoundedPool(
                settings.worker_threads,
                settings.pool_queue_limit,
                nice=settings.worker_threads_nice,
            ),
            streams=StreamSlots(settings.ws_max_connections, metrics),
            stream_batcher=StreamBatcher(
                settings.worker_threads, nice=settings.worker_threads_nice, metrics=metrics
            ),
            worker_sync=WorkerSync(
                registry,
                settings.worker_sync_dir,
                poll_seconds=settings.worker_sync_poll_seconds,
                wait_seconds=settings.reload_wait_seconds,
            )
            if sync_factory is None
            else sync_factory(registry, metrics),
            connections=ConnectionBalance(
                settings.worker_sync_dir if sync_factory is None else None,
                poll_seconds=settings.worker_sync_poll_seconds,
                metrics=metrics,
            ),
            events=EventStore.open(settings, metrics) if settings.events_enabled else None,
        )

    def readiness(self) -> str | None:
        """None when ready to take traffic, else why not."""
        if self.draining.is_set():
            return "draining: the server is shutting down"
        if not self.registry.refreshed:
            return "loading models"
        # No path or OS error here: /readyz answers anyone. The registry logs the details.
        if self.registry.folder_error is not None:
            return "cannot read the models folder"
        if not self.registry.served():
            return "no model could be loaded from the models folder"
        return None

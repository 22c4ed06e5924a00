"""The replicas of one Ray Serve application and the reload generation they follow. Pure logic:
service/ray_serve/deployment.py runs one of these in a Serve deployment of its own, and every
replica reports to it (service/ray_serve/replica_sync.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReplicaReport:
    """What one replica says at each heartbeat."""

    replica: str  # Ray Serve's unique id of the replica
    pid: int
    node: str  # the node's IP address
    generation: int | None  # the last reload generation acted on; None while first loading
    models: dict[str, str] = field(default_factory=dict)  # model name -> version served
    metrics_target: str | None = None  # host:port of its Prometheus endpoint

    def has_acted_on(self, generation: int) -> bool:
        return self.generation is not None and self.generation >= generation


class Membership:
    """Replicas heard from within `timeout_seconds` are members; the others are taken as gone
    (killed, crashed, scaled down), so reloads stop waiting for them and Prometheus stops
    scraping them. Time is this process's own monotonic clock: replicas' clocks never matter."""

    def __init__(self, timeout_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout = timeout_seconds
        self._clock = clock
        self._reports: dict[str, tuple[ReplicaReport, float]] = {}
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def heartbeat(self, report: ReplicaReport) -> int:
        """Record a replica's report; answer the generation it must have acted on."""
        self._reports[report.replica] = (report, self._clock())
        return self._generation

    def begin_reload(self) -> int:
        """A new generation, above every earlier one. If this process restarted and lost the
        count, the wall clock in nanoseconds is still above what replicas acted on."""
        self._generation = max(self._generation + 1, time.time_ns())
        return self._generation

    def leave(self, replica: str) -> None:
        self._reports.pop(replica, None)

    def members(self) -> list[ReplicaReport]:
        """The live replicas, by id; the others are forgotten."""
        now = self._clock()
        for replica, (_, seen) in list(self._reports.items()):
            if now - seen > self._timeout:
                del self._reports[replica]
        return sorted((report for report, _ in self._reports.values()), key=lambda r: r.replica)

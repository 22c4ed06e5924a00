"""A replica's side of reloads on Ray Serve: every replica reports to the application's replica
directory (service/ray_serve/membership.py) each poll interval and learns the reload generation
in the answer. A reload asked of one replica raises the generation, and the call returns once
every live replica has reloaded: after it, all serve the same versions."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from service.ray_serve.membership import ReplicaReport
from service.registry import ModelRegistry
from service.worker_sync import ReloadOutcome, WorkerStatus

logger = logging.getLogger(__name__)


class Directory(Protocol):
    """The replica directory as a replica reaches it (through a Serve handle in a deployment)."""

    async def heartbeat(self, report: ReplicaReport) -> int: ...

    async def begin_reload(self) -> int: ...

    async def members(self) -> list[ReplicaReport]: ...

    def leave(self, replica: str) -> None: ...


@dataclass(frozen=True)
class ReplicaIdentity:
    replica: str  # Ray Serve's unique id of the replica
    pid: int
    node: str  # the node's IP address


class RayReplicaSync:
    """service.worker_sync.ReloadSync for one Ray Serve replica."""

    def __init__(
        self,
        registry: ModelRegistry,
        directory: Directory,
        identity: ReplicaIdentity,
        *,
        poll_seconds: float,
        wait_seconds: float,
        metrics_target: str | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._registry = registry
        self._directory = directory
        self._identity = identity
        self._poll_seconds = poll_seconds
        self._wait_seconds = wait_seconds
        self._metrics_target = metrics_target
        self._on_close = on_close
        self._acted_on: int | None = None

    def report(self) -> ReplicaReport:
        return ReplicaReport(
            replica=self._identity.replica,
            pid=self._identity.pid,
            node=self._identity.node,
            generation=self._acted_on,
            models={model.name: model.version for model in self._registry.served()},
            metrics_target=self._metrics_target,
        )

    async def run(self) -> None:
        """Report every poll interval until cancelled; reload when another replica asked."""
        while True:
            try:
                await self._catch_up()
            except Exception:  # the directory may be restarting: the next round retries
                logger.exception("reporting to the replica directory failed")
            await asyncio.sleep(self._poll_seconds)

    async def _catch_up(self) -> None:
        # The first report goes out before the first load, so a reload meanwhile waits for it.
        generation = await self._directory.heartbeat(self.report())
        if self._acted_on is None or generation > self._acted_on:
            await asyncio.to_thread(self._registry.refresh)
            self._acted_on_up_to(generation)
            await self._directory.heartbeat(self.report())

    async def reload(self) -> ReloadOutcome:
        """Refresh here, raise the generation, and wait (at most `wait_seconds`) until every
        live replica has acted on it."""
        generation = await self._directory.begin_reload()
        report = await asyncio.to_thread(self._registry.refresh)
        self._acted_on_up_to(generation)
        await self._directory.heartbeat(self.report())
        deadline = time.monotonic() + self._wait_seconds
        while True:
            members = await self._directory.members()
            behind = [m.replica for m in members if not m.has_acted_on(generation)]
            if not behind or time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(self._poll_seconds, 0.05))
        if behind:
            logger.warning(
                "replicas %s had not reloaded %s s after a reload request",
                behind,
                self._wait_seconds,
            )
        return ReloadOutcome(
            report,
            [
                (WorkerStatus(m.pid, m.generation, m.models), m.has_acted_on(generation))
                for m in members
            ],
        )

    def _acted_on_up_to(self, generation: int) -> None:
        # Never backwards: a reload and the poll may finish in either order.
        self._acted_on = generation if self._acted_on is None else max(generation, self._acted_on)

    def close(self) -> None:
        """Leave the directory (without waiting: a lost message only delays the timeout)."""
        try:
            self._directory.leave(self._identity.replica)
        except Exception:  # Serve may be shutting down: the membership timeout drops it then
            logger.warning("could not leave the replica directory", exc_info=True)
        if self._on_close is not None:
            self._on_close()

"""The two Ray Serve deployments of the Auscult application: the app itself (create_app, the
same as `auscult serve`), and the replica directory its replicas report to."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import ray
from ray import serve
from ray.serve import Deployment
from ray.serve.handle import DeploymentHandle
from starlette.types import ASGIApp

from service.app import create_app
from service.config import Settings
from service.metrics import Metrics
from service.ray_serve.asgi import ReplicaHeader, ReplicaLifespan
from service.ray_serve.membership import Membership, ReplicaReport
from service.ray_serve.replica_sync import RayReplicaSync, ReplicaIdentity
from service.ray_serve.scrape import MetricsTarget, targets_router
from service.registry import ModelRegistry

APP_DEPLOYMENT = "Auscult"
DIRECTORY_DEPLOYMENT = "AuscultReplicaDirectory"


def _node_address() -> str:
    """The address Ray registered for this replica's node: the one other nodes, and so
    Prometheus, reach the node's processes by."""
    node_id = ray.get_runtime_context().get_node_id()
    for node in _nodes():
        if node["NodeID"] == node_id:
            return str(node["NodeManagerAddress"])
    return _node_ip_address()


# Typed here: Ray declares them without annotations.
_node_ip_address: Callable[[], str] = ray.util.get_node_ip_address
_nodes: Callable[[], list[dict[str, Any]]] = ray.nodes


class _ReplicaDirectory:
    """The application's Membership. Async methods run one at a time on its event loop, so the
    table needs no lock."""

    def __init__(self, timeout_seconds: float) -> None:
        self._membership = Membership(timeout_seconds)

    async def heartbeat(self, report: ReplicaReport) -> int:
        return self._membership.heartbeat(report)

    async def begin_reload(self) -> int:
        return self._membership.begin_reload()

    async def members(self) -> list[ReplicaReport]:
        return self._membership.members()

    async def leave(self, replica: str) -> None:
        self._membership.leave(replica)


class ServeDirectory:
    """The directory through a Serve handle (replica_sync.Directory)."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self._handle = handle

    async def heartbeat(self, report: ReplicaReport) -> int:
        generation: int = await self._handle.heartbeat.remote(report)
        return generation

    async def begin_reload(self) -> int:
        generation: int = await self._handle.begin_reload.remote()
        return generation

    async def members(self) -> list[ReplicaReport]:
        members: list[ReplicaReport] = await self._handle.members.remote()
        return members

    def leave(self, replica: str) -> None:
        self._handle.leave.remote(replica)


class _AuscultApp:
    """One replica: create_app(settings) behind Ray's proxy, HTTP and WebSocket alike."""

    def __init__(self, settings: Settings, directory: DeploymentHandle[Any]) -> None:
        self._settings = settings
        self._directory = ServeDirectory(directory)

    def __serve_build_asgi_app__(self) -> ASGIApp:
        replica = serve.get_replica_context().replica_id.unique_id
        identity = ReplicaIdentity(replica, os.getpid(), _node_address())
        settings = self._settings

        def replica_sync(registry: ModelRegistry, metrics: Metrics) -> RayReplicaSync:
            target = MetricsTarget(metrics, identity.node)
            return RayReplicaSync(
                registry,
                self._directory,
                identity,
                poll_seconds=settings.worker_sync_poll_seconds,
                wait_seconds=settings.reload_wait_seconds,
                metrics_target=target.address,
                on_close=target.stop,
            )

        app = create_app(settings, sync_factory=replica_sync)
        app.include_router(targets_router(self._directory))
        # Innermost first: the header is on every answer, even one given while warming.
        app.add_middleware(ReplicaHeader, replica=replica)
        return ReplicaLifespan(app, timeout_seconds=settings.reload_wait_seconds)


# One replica and no CPU: the directory only keeps a table.
ReplicaDirectory: Deployment = serve.deployment(
    name=DIRECTORY_DEPLOYMENT, num_replicas=1, ray_actor_options={"num_cpus": 0}
)(_ReplicaDirectory)
AuscultApp: Deployment = serve.deployment(name=APP_DEPLOYMENT)(serve.ingress()(_AuscultApp))

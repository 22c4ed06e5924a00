"""Metrics from every replica: each replica serves its own Prometheus endpoint on its node's
address (an ephemeral port), reports it to the replica directory, and any replica answers
Prometheus's HTTP service discovery with the live ones. Counters stay per replica, so a
restarted replica's reset is a reset of its own series, which rate() handles."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from prometheus_client import start_http_server
from pydantic import BaseModel, Field

from service.api.deps import require_api_key
from service.api.schemas import ErrorResponse
from service.metrics import Metrics
from service.ray_serve.membership import ReplicaReport
from service.ray_serve.replica_sync import Directory

TARGETS_PATH = "/v1/ray/metrics-targets"


class MetricsTarget:
    """A replica's own Prometheus endpoint (GET /metrics) on a thread of its own."""

    def __init__(self, metrics: Metrics, host: str) -> None:
        # Port 0: several replicas may share a node; the directory says which port is whose.
        self._server, self._thread = start_http_server(0, addr=host, registry=metrics.registry)
        self.address = f"{host}:{self._server.server_port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class TargetGroup(BaseModel):
    """One entry of Prometheus's http_sd_configs format."""

    targets: list[str] = Field(description="host:port of one replica's metrics endpoint")
    labels: dict[str, str] = Field(description="labels Prometheus adds to its series")


def target_groups(members: list[ReplicaReport]) -> list[TargetGroup]:
    return [
        TargetGroup(targets=[m.metrics_target], labels={"replica": m.replica, "node": m.node})
        for m in members
        if m.metrics_target is not None
    ]


def targets_router(members: Directory) -> APIRouter:
    """GET /v1/ray/metrics-targets: the scrape target of every live replica."""
    router = APIRouter(
        tags=["metrics"],
        dependencies=[Depends(require_api_key)],
        responses={401: {"model": ErrorResponse, "description": "missing or wrong API key"}},
    )

    @router.get(
        TARGETS_PATH,
        summary="Every live Ray Serve replica's metrics endpoint (Prometheus http_sd format)",
    )
    async def metrics_targets() -> list[TargetGroup]:
        return target_groups(await members.members())

    return router

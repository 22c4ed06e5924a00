"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import RuntimeDep
from service.api.schemas import Alive, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Alive:
    return Alive()


@router.get(
    "/readyz",
    summary="Models are loaded and warmed, and the server is not shutting down",
    responses={503: {"model": Readiness, "description": "loading, no models, or draining"}},
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    reason = runtime.readiness()
    body = Readiness(
        status="not ready" if reason else "ready",
        reason=reason,
        models=len(runtime.registry.served()),
    )
    return JSONResponse(body.model_dump(), status_code=503 if reason else 200)

"""Prometheus metrics in the text exposition format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from service.api.deps import RuntimeDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics (all workers' when run with --workers)")
def metrics(runtime: RuntimeDep) -> Response:
    # A plain def: FastAPI runs it in a thread, as multiprocess mode reads every worker's files.
    body, content_type = runtime.metrics.exposition()
    return Response(body, media_type=content_type)

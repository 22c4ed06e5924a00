"""Prometheus metrics in the text exposition format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

from service.api.deps import RuntimeDep

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (all workers' when run with --workers)",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(runtime: RuntimeDep) -> Response:
    # A plain def: FastAPI runs it in a thread, as multiprocess mode reads every worker's files.
    body, content_type = runtime.metrics.exposition()
    return Response(body, media_type=content_type)

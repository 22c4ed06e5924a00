"""`create_app(settings)`: the FastAPI factory. Everything an app holds lives in its lifespan's
runtime, never in module globals, so a process (or a test) can run many apps side by side."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TypedDict

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.middleware import Middleware

from service import __version__
from service.api.admission import AdmissionMiddleware
from service.api.body_limit import BodyLimitMiddleware
from service.api.errors import CancelledAtShutdownMiddleware, install_error_handlers
from service.api.inference_v2.error_shape import V2ErrorShapeMiddleware
from service.api.request_id import RequestIdMiddleware
from service.api.request_metrics import RequestMetricsMiddleware
from service.api.routes import (
    events,
    health,
    inference_v2,
    metrics,
    models,
    report,
    review,
    scoring,
    stream,
    windows,
)
from service.api.schemas import ErrorResponse
from service.concurrency import PoolFullError
from service.config import Settings
from service.draining import DrainOnSignal
from service.http_protocol import hold_connection
from service.memory import return_freed_memory, trim_periodically
from service.metrics import Metrics
from service.runtime import Runtime, SyncFactory

logger = logging.getLogger(__name__)


class AppState(TypedDict):
    """The lifespan state every request sees as `request.state`."""

    runtime: Runtime


def _include_routers(app: FastAPI) -> None:
    """Every router joins the app here, one line per resource."""
    app.include_router(health.router)
    app.include_router(events.router)
    app.include_router(review.router)
    app.include_router(metrics.router)
    app.include_router(models.router)
    app.include_router(report.router)
    app.include_router(scoring.router)
    app.include_router(stream.router)
    app.include_router(windows.router)
    app.include_router(inference_v2.health)
    app.include_router(inference_v2.router)


async def _keep_models_fresh(runtime: Runtime) -> None:
    """Load the models folder now, then look for new or changed bundles every poll interval."""
    interval = runtime.settings.reload_poll_seconds
    while True:
        try:
            await asyncio.to_thread(runtime.registry.refresh)
        except Exception:  # a reload must never stop the polling; the error is logged
            logger.exception("reloading %s failed", runtime.settings.models_dir)
        if interval <= 0:
            return
        await asyncio.sleep(interval)


def create_app(settings: Settings, *, sync_factory: SyncFactory | None = None) -> FastAPI:
    """An app serving the bundles in settings.models_dir. Models load in the background after
    start-up, so /healthz answers at once and /readyz turns 200 when they are warm.
    sync_factory replaces the worker folder through which a reload reaches every process
    (Ray Serve replicas, service/ray_serve/)."""
    app_metrics = Metrics(settings.stations)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[AppState]:
        # In every worker process: what a request frees goes back to the system (RSS returns).
        return_freed_memory()
        runtime = Runtime.start(settings, app_metrics, sync_factory)
        drain = DrainOnSignal(runtime.draining, settings.drain_seconds)
        drain.install()
        loader = asyncio.create_task(_keep_models_fresh(runtime))
        # Reloads asked of other workers of the same server (service/worker_sync.py).
        follower = asyncio.create_task(runtime.worker_sync.run())
        balance = asyncio.create_task(runtime.connections.run())
        tasks = [loader, follower, balance]
        if settings.memory_trim_seconds > 0:
            tasks.append(asyncio.create_task(trim_periodically(settings.memory_trim_seconds)))
        try:
            yield {"runtime": runtime}
        finally:
            runtime.draining.set()
            drain.uninstall()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            runtime.worker_sync.close()
            runtime.connections.close()
            # Work already accepted finishes before the threads stop.
            await asyncio.to_thread(runtime.pool.shutdown)
            # After the pool: the events of the last requests are written too.
            if runtime.events is not None:
                await asyncio.to_thread(runtime.events.close)
            await asyncio.to_thread(runtime.stream_batcher.shutdown)
            app_metrics.close()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the service itself (the
    # package ships their files), so they work in an air-gapped plant.
    app = FastAPIOffline(
        title="Auscult",
        version=__version__,
        summary="Anomaly scores and verdicts for machine sound and sensor series.",
        lifespan=lifespan,
        # Any request can be one that uvicorn cannot parse (service/http_protocol.py).
        responses={400: {"model": ErrorResponse, "description": "a malformed HTTP request"}},
        middleware=[
            # Outermost first: every answer below carries X-Request-ID, every log line its id.
            Middleware(RequestIdMiddleware),
            # Requests refused for size are still counted.
            Middleware(RequestMetricsMiddleware, metrics=app_metrics),
            # Outside everything that answers an error: /v2 errors read {"error": ...}.
            Middleware(V2ErrorShapeMiddleware),
            Middleware(CancelledAtShutdownMiddleware),
            # Before the body limit: a refused request's body is not read at all.
            Middleware(
                AdmissionMiddleware,
                routes=[
                    route
                    for route in (
                        *scoring.router.routes,
                        *windows.router.routes,
                        *inference_v2.router.routes,
                    )
                    if isinstance(route, APIRoute)
                ],
            ),
            Middleware(
                BodyLimitMiddleware,
                max_bytes=settings.max_body_bytes,
                deadline_seconds=settings.body_timeout_seconds,
            ),
        ],
    )
    _include_routers(app)
    install_error_handlers(app)

    @app.exception_handler(PoolFullError)
    async def pool_full(request: Request, exc: PoolFullError) -> JSONResponse:
        app_metrics.pool_rejections.inc()
        runtime: Runtime = request.state.runtime
        retry_after = runtime.pool.retry_after()
        hold_connection(request.scope, retry_after)
        return JSONResponse(
            {"detail": str(exc)}, status_code=503, headers={"Retry-After": str(retry_after)}
        )

    return app

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
from starlette.middleware import Middleware

from service import __version__
from service.api.body_limit import BodyLimitMiddleware
from service.api.request_metrics import RequestMetricsMiddleware
from service.api.routes import health, metrics, models, scoring, stream, windows
from service.concurrency import PoolFullError
from service.config import Settings
from service.draining import DrainOnSignal
from service.metrics import Metrics
from service.runtime import Runtime

logger = logging.getLogger(__name__)

# Seconds a client is asked to wait after a 503 because the scoring pool was full.
RETRY_AFTER_SECONDS = 1


class AppState(TypedDict):
    """The lifespan state every request sees as `request.state`."""

    runtime: Runtime


def _include_routers(app: FastAPI) -> None:
    """Every router joins the app here, one line per resource."""
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(models.router)
    app.include_router(scoring.router)
    app.include_router(stream.router)
    app.include_router(windows.router)


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


def create_app(settings: Settings) -> FastAPI:
    """An app serving the bundles in settings.models_dir. Models load in the background after
    start-up, so /healthz answers at once and /readyz turns 200 when they are warm."""
    app_metrics = Metrics(settings.stations)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[AppState]:
        runtime = Runtime.start(settings, app_metrics)
        drain = DrainOnSignal(runtime.draining, settings.drain_seconds)
        drain.install()
        loader = asyncio.create_task(_keep_models_fresh(runtime))
        try:
            yield {"runtime": runtime}
        finally:
            runtime.draining.set()
            drain.uninstall()
            loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loader
            # Work already accepted finishes before the threads stop.
            await asyncio.to_thread(runtime.pool.shutdown)
            app_metrics.close()

    app = FastAPI(
        title="Auscult",
        version=__version__,
        summary="Anomaly scores and verdicts for machine sound and sensor series.",
        lifespan=lifespan,
        middleware=[
            # Outermost first: requests refused for size are still counted.
            Middleware(RequestMetricsMiddleware, metrics=app_metrics),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
        ],
    )
    _include_routers(app)

    @app.exception_handler(PoolFullError)
    async def pool_full(_: Request, exc: PoolFullError) -> JSONResponse:
        app_metrics.pool_rejections.inc()
        return JSONResponse(
            {"detail": str(exc)},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    return app

"""ASGI wrappers a Ray Serve replica puts around the app: the lifespan state in every request,
traffic only once the models folder has been read, and the name of the replica that answered."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.runtime import Runtime

logger = logging.getLogger(__name__)

REPLICA_HEADER = "x-auscult-replica"


class ReplicaLifespan:
    """Runs the app's lifespan the way uvicorn would for a server of its own. Ray's proxy
    builds each request's scope in another process, without the lifespan state that Starlette
    hands to requests (the app's Runtime): this puts a copy into every request's scope. It also
    holds the lifespan's startup.complete until the app's first load of the models folder is
    done: Ray Serve routes to a replica once its startup completes, so a replica added by the
    autoscaler or after a crash never answers 404 for a model it has not loaded yet."""

    def __init__(self, app: ASGIApp, *, timeout_seconds: float) -> None:
        self._app = app
        self._timeout = timeout_seconds
        self._state: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            # A shallow copy per request, as uvicorn does.
            await self._app({**scope, "state": dict(self._state)}, receive, send)
            return
        self._state = scope.setdefault("state", {})

        async def send_when_warm(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                await self._wait_for_models()
            await send(message)

        await self._app(scope, receive, send_when_warm)

    async def _wait_for_models(self) -> None:
        runtime = self._state.get("runtime")
        if not isinstance(runtime, Runtime):
            return
        deadline = time.monotonic() + self._timeout
        while not runtime.registry.refreshed:
            if time.monotonic() >= deadline:
                # Serving late is better than never: /readyz keeps saying why.
                logger.warning("models not loaded after %s s; taking traffic", self._timeout)
                return
            await asyncio.sleep(0.05)


class ReplicaHeader:
    """Adds X-Auscult-Replica (Ray Serve's replica id) to every HTTP response, so an operator
    (or a test) can tell the replicas behind the proxy apart."""

    def __init__(self, app: ASGIApp, *, replica: str) -> None:
        self._app = app
        self._header = (REPLICA_HEADER.encode(), replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self._header]}
            await send(message)

        await self._app(scope, receive, send_with_header)

"""One accepted stream connection as both protocols use it: receiving with the idle timeout,
running work in the scoring pool, counting dropped frames, holding a stream slot."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any, ParamSpec, TypeVar

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel
from starlette import status

from service.api.streams.errors import StreamError
from service.concurrency import PoolFullError
from service.metrics import Metrics
from service.registry import ServedModel
from service.runtime import Runtime

P = ParamSpec("P")
T = TypeVar("T")


@contextlib.asynccontextmanager
async def stream_slot(runtime: Runtime) -> AsyncIterator[None]:
    """Hold one of the AUSCULT_WS_MAX_CONNECTIONS stream slots, or refuse with 1013."""
    if not runtime.streams.try_acquire():
        raise StreamError(
            status.WS_1013_TRY_AGAIN_LATER,
            "too_many_streams",
            f"all {runtime.streams.limit} stream slots are in use; reconnect later",
        )
    try:
        yield
    finally:
        runtime.streams.release()


class StreamConnection:
    def __init__(self, websocket: WebSocket, runtime: Runtime, model: ServedModel) -> None:
        self.websocket = websocket
        self.runtime = runtime
        self.model = model
        self.settings = runtime.settings

    @property
    def metrics(self) -> Metrics:
        return self.runtime.metrics

    async def receive(self) -> MutableMapping[str, Any] | None:
        """The next message, or None after AUSCULT_WS_IDLE_TIMEOUT_SECONDS of silence. Raises
        WebSocketDisconnect when the client leaves."""
        try:
            message = await asyncio.wait_for(
                self.websocket.receive(), timeout=self.settings.ws_idle_timeout_seconds
            )
        except TimeoutError:
            return None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", status.WS_1000_NORMAL_CLOSURE))
        return message

    def idle_error(self, what: str = "nothing was received") -> StreamError:
        idle = self.settings.ws_idle_timeout_seconds
        return StreamError(status.WS_1001_GOING_AWAY, "idle_timeout", f"{what} for {idle:g} s")

    async def in_pool(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking work in the scoring pool; a full pool ends the stream with 1013."""
        try:
            return await self.runtime.pool.run(fn, *args, **kwargs)
        except PoolFullError as exc:
            self.metrics.pool_rejections.inc()
            self.drop("pool_full")
            raise StreamError(status.WS_1013_TRY_AGAIN_LATER, "busy", str(exc)) from exc

    def drop(self, reason: str) -> None:
        self.metrics.frames_dropped.labels(self.model.name, reason).inc()

    def refuse_frame(self, reason: str, error: StreamError) -> StreamError:
        """Count a dropped frame and return the error that ends the stream."""
        self.drop(reason)
        return error

    async def send(self, message: BaseModel) -> None:
        await self.websocket.send_text(message.model_dump_json())

    async def close(self) -> None:
        await self.websocket.close(status.WS_1000_NORMAL_CLOSURE)

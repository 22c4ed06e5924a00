"""One accepted stream connection as both protocols use it: receiving with the idle timeout,
running work in the scoring pool or the stream batcher, counting dropped frames, holding a
stream slot."""

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
from service.scoring.batching import Prepared

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
        # The idle timeout: one timer per connection, moved on lazily (see `_check_idle`)
        # rather than one set and cancelled per message, which hundreds of streams at ten
        # frames a second would pay for on the event loop.
        self._idle_deadline = 0.0
        self._waiting: asyncio.Task[Any] | None = None  # the task in `receive`, if any
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_fired = False

    @property
    def metrics(self) -> Metrics:
        return self.runtime.metrics

    async def receive(self) -> MutableMapping[str, Any] | None:
        """The next message, or None after AUSCULT_WS_IDLE_TIMEOUT_SECONDS of silence. Raises
        WebSocketDisconnect when the client leaves."""
        loop = asyncio.get_running_loop()
        self._idle_deadline = loop.time() + self.settings.ws_idle_timeout_seconds
        if self._idle_timer is None:
            self._idle_timer = loop.call_at(self._idle_deadline, self._check_idle)
        task = asyncio.current_task()
        self._waiting = task
        try:
            message = await self.websocket.receive()
        except asyncio.CancelledError:
            if self._idle_fired and task is not None:
                self._idle_fired = False
                if task.uncancel() == 0:  # the idle timer's cancellation, no one else's
                    return None
            raise
        finally:
            self._waiting = None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", status.WS_1000_NORMAL_CLOSURE))
        return message

    def _check_idle(self) -> None:
        """The idle timer: interrupt a `receive` that has waited past its deadline, or move
        on to the deadline of the one now waiting. Not waiting (the stream is busy, or over),
        it stops; the next `receive` starts it again."""
        self._idle_timer = None
        if self._waiting is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._idle_deadline:
            self._idle_timer = loop.call_at(self._idle_deadline, self._check_idle)
            return
        self._idle_fired = True
        self._waiting.cancel()

    def finish(self) -> None:
        """Stop the idle timer once the stream is over: pending, it would keep the connection,
        its WebSocket and its buffers in memory for the rest of the idle timeout (60 s; a fuzz
        run of 2,000 short sessions ended 61 MB above its start that way)."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

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

    async def in_batch(self, prepare: Callable[[], Prepared[T]]) -> T:
        """Run one step of this stream in the stream batcher (service/scoring/batching.py),
        together with the steps of other streams: never refused, so a busy server slows the
        stream (and, through its buffer, the client) instead of closing it."""
        return await self.runtime.stream_batcher.run(prepare)

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

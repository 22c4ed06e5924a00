"""Pure ASGI middleware that bounds request bodies as they stream in, without buffering them:
413 past a size limit, 408 when the whole body has not arrived by a deadline."""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.middleware_answers import TrackedSend, send_error

# The unread rest of a refused body is not drained: the connection is closed instead.
_CLOSE = {"Connection": "close"}


class BodyTooLargeError(HTTPException):
    """Raised from `receive` once the body passes the limit; an HTTPException so that any
    handler that catches it still answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"request body is larger than the limit of {limit} bytes",
            headers=_CLOSE,
        )


class BodyTimeoutError(HTTPException):
    """Raised from `receive` when the body is still incomplete at its deadline (a stalled or
    trickling client), so it cannot hold a connection and a worker's attention for ever."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            status_code=408,
            detail=f"the request body did not arrive in full within {seconds:g} s",
            headers=_CLOSE,
        )


class BodyLimitMiddleware:
    """Answers 413 when Content-Length declares too much, or once the bytes received exceed
    `max_bytes` (chunked uploads and lying headers included); answers 408 when the body is not
    complete `deadline_seconds` after the request head."""

    def __init__(self, app: ASGIApp, max_bytes: int, deadline_seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.deadline_seconds = deadline_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(BodyTooLargeError(self.max_bytes), scope, receive, send)
            return

        received = 0
        body_complete = False
        deadline = asyncio.get_running_loop().time() + self.deadline_seconds

        async def limited_receive() -> Message:
            nonlocal received, body_complete
            if body_complete:
                # Only the disconnect is left to wait for: that has no deadline.
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeoutError(self.deadline_seconds) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
                body_complete = not message.get("more_body", False)
            return message

        tracked = TrackedSend(send)
        try:
            await self.app(scope, limited_receive, tracked)
        except (BodyTooLargeError, BodyTimeoutError) as error:
            if tracked.started:
                raise
            await self._refuse(error, scope, receive, send)

    @staticmethod
    async def _refuse(error: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
        await send_error(scope, receive, send, error.status_code, error.detail, error.headers)

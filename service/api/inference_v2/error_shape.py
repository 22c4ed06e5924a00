"""Pure ASGI middleware giving every error under /v2 the Open Inference Protocol's shape,
`{"error": "..."}`, whoever answered it: the routes, authentication, the body limit, admission
control, a full pool or a bug. /v1 keeps `{"detail": "..."}`."""

from __future__ import annotations

import json

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/v2"


class V2ErrorShapeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        start: Message | None = None  # an error's head, held until its body is rewritten
        body = b""
        started = False

        async def reshaping_send(message: Message) -> None:
            nonlocal start, body, started
            if message["type"] == "http.response.start":
                started = True
                if message["status"] >= 400:
                    start = message
                    return
            elif message["type"] == "http.response.body" and start is not None:
                body += message.get("body", b"")
                if message.get("more_body", False):
                    return
                reshaped = _reshaped(body)
                headers = MutableHeaders(raw=list(start["headers"]))
                headers["content-length"] = str(len(reshaped))
                await send({**start, "headers": headers.raw})
                await send({"type": "http.response.body", "body": reshaped})
                return
            await send(message)

        try:
            await self.app(scope, receive, reshaping_send)
        except Exception:
            if started:
                raise
            # The error handler further out would answer {"detail": ...}: answer first, then
            # let the exception reach it to be logged.
            body_bytes = json.dumps({"error": "internal server error"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body_bytes)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body_bytes})
            raise


def _reshaped(body: bytes) -> bytes:
    """`{"detail": x}` as `{"error": x}`; anything else is left as it is."""
    try:
        content = json.loads(body)
    except ValueError:
        return body
    if isinstance(content, dict) and set(content) == {"detail"}:
        detail = content["detail"]
        return json.dumps({"error": detail if isinstance(detail, str) else str(detail)}).encode()
    return body

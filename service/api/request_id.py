"""Pure ASGI middleware giving every request an id: the client's `X-Request-ID` when it is a
sensible one, else a fresh UUID. The id is returned in the `X-Request-ID` header of every answer
(errors of the other middlewares included, and a stream's handshake), carried by every log record
written for the request, and, in JSON log format, written in its access record."""

from __future__ import annotations

import logging
import re
import time
import uuid
from urllib.parse import parse_qs

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.request_metrics import route_template
from service.log_redaction import redact_query
from service.logging_setup import ACCESS_LOGGER, RequestLog, begin_request, current_request

REQUEST_ID_HEADER = "X-Request-ID"
# What proxies and tracing systems send (UUIDs, hex, ULIDs, `host:counter`): an id with anything
# else, or longer, is replaced rather than written into logs and headers.
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The `station` query parameter's limit on the routes that take it.
_STATION_CHARACTERS = 64

access_logger = logging.getLogger(ACCESS_LOGGER)


def accepted_request_id(presented: str | None) -> str:
    """`presented` if it is a usable id, else a fresh one."""
    if presented is not None and _ACCEPTED_ID.fullmatch(presented):
        return presented
    return str(uuid.uuid4())


def current_request_id() -> str | None:
    request = current_request()
    return request.request_id if request is not None else None


def _station(scope: Scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("station")
    return values[0][:_STATION_CHARACTERS] if values else None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = RequestLog(
            accepted_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER)),
            station=_station(scope),
        )
        begin_request(request)
        started = time.perf_counter()
        status = 500  # what the client sees when the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.accept"):
                message.setdefault("headers", [])  # a stream's accept may have none
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request.request_id
                status = int(message.get("status", 101))
            elif message["type"] == "websocket.close" and status == 500:
                status = 403  # closed before accepting: uvicorn answers the handshake 403
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # Known once routed (requests refused before routing are 'unmatched').
            request.route = route_template(scope)
            # Routes that look their model up without service/api/deps.py: the name asked for.
            request.model = request.model or scope.get("path_params", {}).get("name")
            self._log_access(scope, status, time.perf_counter() - started)

    @staticmethod
    def _log_access(scope: Scope, status: int, seconds: float) -> None:
        """One record per answer; a stream's when it ends (status 101 if it was accepted,
        its duration the stream's)."""
        if not access_logger.isEnabledFor(logging.INFO):
            return
        query = scope.get("query_string", b"").decode("latin-1")
        path = redact_query(f"{scope['path']}?{query}" if query else scope["path"])
        client = scope.get("client")
        address = f"{client[0]}:{client[1]}" if client else None
        method = scope["method"] if scope["type"] == "http" else "WEBSOCKET"
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            address,
            method,
            path,
            scope.get("http_version", "1.1"),
            status,
            extra={
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "method": method,
                "path": path,
                "client": address,
            },
        )

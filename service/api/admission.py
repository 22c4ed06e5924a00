"""Pure ASGI admission control for the scoring routes: a request the scoring pool could not
start within AUSCULT_MAX_QUEUE_WAIT_SECONDS is refused from its head, before its body is read or
any route code runs, so that overload costs almost nothing and never turns into a collapse."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from starlette.datastructures import Headers
from starlette.routing import Route, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.middleware_answers import send_error
from service.http_protocol import hold_connection
from service.runtime import Runtime

# A refused body up to this size is left for uvicorn to discard as it arrives, keeping the
# connection; a larger one is not worth receiving: the answer closes the connection.
DISCARD_BYTES = 2 * 1024 * 1024


class AdmissionMiddleware:
    """Refuses POSTs to `routes` with 503 and Retry-After while the expected wait for a
    scoring thread is over the bound. Requests admitted but still reading their bodies count
    as work ahead, so a burst cannot all be admitted on an empty queue."""

    def __init__(self, app: ASGIApp, routes: Iterable[Route]) -> None:
        self.app = app
        self._routes = [(compile_path(r.path)[0], r) for r in routes]
        self._reading = 0  # admitted requests whose bodies have not arrived in full yet

    def _guarded(self, scope: Scope) -> Route | None:
        """The guarded route a request is for, if any."""
        if scope["method"] != "POST":
            return None
        path = scope["path"]
        return next((route for regex, route in self._routes if regex.match(path)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = cast(Runtime | None, (scope.get("state") or {}).get("runtime"))
        route = self._guarded(scope) if scope["type"] == "http" else None
        if runtime is None or route is None:
            await self.app(scope, receive, send)
            return
        pool = runtime.pool
        bound = runtime.settings.max_queue_wait_seconds
        wait = pool.expected_wait(self._reading)
        if wait > bound:
            runtime.metrics.pool_rejections.inc()
            # The request metrics label a refusal with its route: named here, the metrics
            # need not search every route for it (a refusal should cost next to nothing).
            scope["route"] = route
            detail = (
                f"the scoring queue is {wait:.2f} s long, over the limit of {bound:g} s; "
                "retry shortly"
            )
            await _refuse(detail, pool.retry_after(self._reading), scope, receive, send)
            return

        self._reading += 1
        reading = True

        def body_arrived() -> None:
            nonlocal reading
            if reading:
                reading = False
                self._reading -= 1

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_arrived()
            return message

        try:
            await self.app(scope, counting_receive, send)
        finally:
            body_arrived()


async def _refuse(
    detail: str, retry_after: int, scope: Scope, receive: Receive, send: Send
) -> None:
    """The 503; a connection that stays open is not read again before `retry_after`."""
    headers = {"Retry-After": str(retry_after)}
    if _body_discarded(scope):
        hold_connection(scope, retry_after)
    else:
        headers["Connection"] = "close"
    await send_error(scope, receive, send, 503, detail, headers)


def _body_discarded(scope: Scope) -> bool:
    """Whether the connection can stay open after a refusal answered before the body: uvicorn
    reads and drops the unread rest of a body of known length as it arrives (cheaply, in its
    parser), and the client, which got a final answer, sends it or closes. Not so for a body of
    unknown (chunked) or large length, nor for a client waiting for `100 Continue`, which will
    never send it: those connections are closed."""
    headers = Headers(scope=scope)
    if headers.get("expect", "").lower() == "100-continue":
        return False
    length = headers.get("content-length")
    if length is None:
        return "transfer-encoding" not in headers  # no body at all, or a chunked one
    return length.isdigit() and int(length) <= DISCARD_BYTES

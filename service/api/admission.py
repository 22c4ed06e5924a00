"""Pure ASGI admission control for the scoring routes: a request the scoring pool could not
start within AUSCULT_MAX_QUEUE_WAIT_SECONDS is refused from its head, before its body is read or
any route code runs, so that overload costs almost nothing and never turns into a collapse."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from starlette.datastructures import Headers
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.middleware_answers import send_error
from service.runtime import Runtime

# A refused body up to this size is left for uvicorn to discard as it arrives, keeping the
# connection; a larger one is not worth receiving: the answer closes the connection.
DISCARD_BYTES = 2 * 1024 * 1024


class AdmissionMiddleware:
    """Refuses POSTs to `paths` (route templates) with 503 and Retry-After while the expected
    wait for a scoring thread is over the bound. Requests admitted but still reading their
    bodies count as work ahead, so a burst cannot all be admitted on an empty queue."""

    def __init__(self, app: ASGIApp, paths: Iterable[str]) -> None:
        self.app = app
        self._paths = [compile_path(path)[0] for path in paths]
        self._reading = 0  # admitted requests whose bodies have not arrived in full yet

    def _guarded(self, scope: Scope) -> bool:
        path = scope["path"]
        return scope["method"] == "POST" and any(p.match(path) for p in self._paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = cast(Runtime | None, (scope.get("state") or {}).get("runtime"))
        if scope["type"] != "http" or runtime is None or not self._guarded(scope):
            await self.app(scope, receive, send)
            return
        pool = runtime.pool
        bound = runtime.settings.max_queue_wait_seconds
        wait = pool.expected_wait(self._reading)
        if wait > bound:
            runtime.metrics.pool_rejections.inc()
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
    headers = {"Retry-After": str(retry_after)}
    if not _body_discarded(scope):
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

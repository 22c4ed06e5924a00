"""How failures become answers: every 4xx and 5xx is JSON `{"detail": ...}`. FastAPI's own
handlers already answer HTTPException that way; this adds the rest: validation errors as one
sentence (FastAPI's default is a list of objects), a
client gone mid-upload (no answer, counted as 499), an unexpected exception (500), and a request
cut at the shutdown timeout (503)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.middleware_answers import TrackedSend, send_error
from service.api.request_id import REQUEST_ID_HEADER, current_request_id

logger = logging.getLogger(__name__)

# nginx's code for "client closed request": the client left before an answer, not a server error.
CLIENT_CLOSED_REQUEST = 499
# uvicorn drops the connection after an unhandled exception; the answer says so.
_CLOSE = {"Connection": "close"}


async def _client_gone(request: Request, _: Exception) -> Response:
    logger.info("the client closed the connection during %s %s", request.method, request.url.path)
    # Nobody reads it: uvicorn discards what is sent on a closed connection. The status is for
    # the request metrics.
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _internal_error(_: Request, __: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this answer and uvicorn logs its traceback once.
    # Answered outside every middleware (by Starlette's outermost one): the id is added here.
    request_id = current_request_id()
    headers = _CLOSE if request_id is None else {**_CLOSE, REQUEST_ID_HEADER: request_id}
    return JSONResponse({"detail": "internal server error"}, status_code=500, headers=headers)


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    # FastAPI's default detail is a list of pydantic error objects; the documented shape (and
    # what an operator reads in a log) is one sentence naming each field that was wrong.
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ())) or 'request'}: {error.get('msg')}"
        for error in exc.errors()
    )
    return JSONResponse({"detail": problems or "the request is invalid"}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _internal_error)


class CancelledAtShutdownMiddleware:
    """uvicorn cancels the requests still running at its graceful-shutdown timeout; a
    cancellation reaching the top of a request can only be that one. It is answered 503 in
    JSON (instead of uvicorn's plain-text 500 and a traceback), so the client knows to retry
    elsewhere."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = TrackedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            logger.warning("%s %s cut at the shutdown timeout", scope["method"], scope["path"])
            if tracked.started:
                raise
            # The task ends right after this answer, so the cancellation is not swallowed for
            # any code that would go on running.
            await send_error(
                scope,
                receive,
                send,
                503,
                "the server is shutting down; retry the request",
                {**_CLOSE, "Retry-After": "1"},
            )

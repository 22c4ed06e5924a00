"""How a stream ends on an error: an `error` message with a code, then a close code
(`starlette.status`, RFC 6455). Both protocols use these."""

from __future__ import annotations

import contextlib
from typing import Literal

from fastapi import WebSocket
from pydantic import BaseModel
from starlette import status


class StreamError(Exception):
    """Ends a stream: an error message with `code`, then a close with `close_code`."""

    def __init__(self, close_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.code = code
        self.message = message


class ErrorMessage(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str


def protocol_error(message: str) -> StreamError:
    return StreamError(status.WS_1008_POLICY_VIOLATION, "protocol", message)


def internal_error() -> StreamError:
    return StreamError(status.WS_1011_INTERNAL_ERROR, "internal", "the server failed; see its log")


async def end_with(websocket: WebSocket, error: StreamError) -> None:
    """Send the error message and close; the client may be gone already, with no one to tell."""
    with contextlib.suppress(Exception):
        message = ErrorMessage(code=error.code, message=error.message)
        await websocket.send_text(message.model_dump_json())
        await websocket.close(error.close_code, reason=error.code)

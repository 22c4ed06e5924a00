"""What the pure ASGI middlewares share when they answer a request themselves: the error answer
in the `{"detail": ...}` shape of every other one, and a `send` that notes whether an answer
has begun (after which no other can be sent)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send


class TrackedSend:
    """Passes messages on to `send`; `started` turns true with the answer's first one."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


async def send_error(
    scope: Scope,
    receive: Receive,
    send: Send,
    status_code: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    response = JSONResponse({"detail": detail}, status_code=status_code, headers=headers)
    await response(scope, receive, send)

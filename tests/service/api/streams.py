"""A real WebSocket client for the stream tests: connect, start, send, and read to the close."""

from __future__ import annotations

import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.server import LiveServer


def stream_connection(
    server: LiveServer,
    model: str = "fan",
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
) -> Any:
    """An async context manager yielding the connection (not yet started)."""
    url = f"{server.ws_url}/v1/models/{model}/stream" + (f"?{query}" if query else "")
    return connect(url, additional_headers=headers, proxy=None, open_timeout=10)


async def start(ws: ClientConnection, sample_rate: int = 16000, **fields: Any) -> dict[str, Any]:
    """Send the start message and return the answer (ready, or an error)."""
    await ws.send(json.dumps({"type": "start", "sample_rate": sample_rate, **fields}))
    answer: dict[str, Any] = json.loads(await ws.recv())
    return answer


async def read_to_close(ws: ClientConnection) -> tuple[list[dict[str, Any]], int | None]:
    """Every message until the server closes, and the close code."""
    messages = []
    try:
        async for message in ws:
            messages.append(json.loads(message))
    except ConnectionClosed:
        pass
    return messages, ws.close_code

"""`WS /v1/models/{name}/stream`: authenticate, find the model, take a stream slot, and hand the
connection to its protocol in `service/api/streams/` (audio or sensor, by the model's kind)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette import status

from service.api.auth import key_accepted, presented_key
from service.api.deps import MODELS_LOADING, get_runtime
from service.api.streams.audio import serve_audio_stream
from service.api.streams.connection import StreamConnection, stream_slot
from service.api.streams.errors import StreamError, end_with, internal_error
from service.api.streams.sensor import serve_sensor_stream
from service.runtime import Runtime

logger = logging.getLogger(__name__)

router = APIRouter(tags=["streaming"])


async def _serve(websocket: WebSocket, runtime: Runtime, name: str) -> None:
    presented = presented_key(websocket.headers, websocket.query_params)
    if not key_accepted(runtime.settings.api_keys, presented):
        raise StreamError(
            status.WS_1008_POLICY_VIOLATION,
            "unauthorized",
            "a valid API key is required: send 'Authorization: Bearer <key>', "
            "'X-API-Key: <key>' or the api_key query parameter",
        )
    model = runtime.registry.get(name)
    if model is None and not runtime.registry.refreshed:
        raise StreamError(status.WS_1013_TRY_AGAIN_LATER, "models_loading", MODELS_LOADING)
    if model is None:
        raise StreamError(
            status.WS_1008_POLICY_VIOLATION, "unknown_model", f"no model named {name!r}"
        )
    connection = StreamConnection(websocket, runtime, model)
    try:
        async with stream_slot(runtime):
            if model.windows is not None:
                await serve_sensor_stream(connection, model.windows)
            elif model.audio is not None:
                await serve_audio_stream(connection, model.audio)
    finally:
        connection.finish()


@router.websocket("/v1/models/{name}/stream")
async def stream(websocket: WebSocket, name: str) -> None:
    runtime = get_runtime(websocket)
    # Accept first even to refuse: browsers see the error message, never an HTTP status.
    await websocket.accept()
    try:
        await _serve(websocket, runtime, name)
        return
    except WebSocketDisconnect:
        return  # the client left; nothing to tell it
    except StreamError as closed:
        ending = closed
    except Exception:  # a bug must end this stream, never the process
        logger.exception("stream on model %r failed", name)
        ending = internal_error()
    await end_with(websocket, ending)

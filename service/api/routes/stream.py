"""Streaming audio: `WS /v1/models/{name}/stream` (protocol in docs/API.md).

A receiver task takes frames into a bounded per-connection buffer while a scorer task scores
them in the pool, so a client that sends faster than the server scores is refused (1013)
instead of filling memory."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from service.api.auth import key_accepted, presented_key
from service.api.deps import get_runtime
from service.api.sensor_stream import serve_sensor_stream
from service.api.stream_messages import (
    EndMessage,
    ErrorMessage,
    ReadyMessage,
    ScoreMessage,
    StartMessage,
    StopMessage,
)
from service.concurrency import PoolFullError
from service.registry import ServedModel
from service.runtime import Runtime
from service.scoring.audio import AudioScorer
from service.stream_scoring import AudioStreamScorer, BlockVerdict, StreamFrameError

logger = logging.getLogger(__name__)

router = APIRouter(tags=["streaming"])

# Close codes (RFC 6455).
NORMAL = 1000
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013


class StreamError(Exception):
    """Ends a stream: an error message with `code`, then a close with `close_code`."""

    def __init__(self, close_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.code = code
        self.message = message


class _AudioStream:
    """One accepted stream after the start message: the receiver and scorer tasks."""

    def __init__(
        self,
        websocket: WebSocket,
        runtime: Runtime,
        model: ServedModel,
        scorer: AudioStreamScorer,
        station: str | None,
    ) -> None:
        self._ws = websocket
        self._runtime = runtime
        self._model = model
        self._scorer = scorer
        self._station = station
        self._limits = runtime.settings
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._buffered = 0  # bytes received and not yet scored
        self._samples = 0  # audio received, in samples per channel
        self._blocks = 0
        self._anomalies = 0

    async def run(self) -> None:
        receiver = asyncio.create_task(self._receive_frames())
        scorer = asyncio.create_task(self._score_frames())
        try:
            done, _ = await asyncio.wait({receiver, scorer}, return_when=asyncio.FIRST_COMPLETED)
            if scorer in done and (error := scorer.exception()) is not None:
                raise error
            if not await receiver:
                return  # the client went away
            await scorer
            end = EndMessage(
                blocks=self._blocks,
                anomalies=self._anomalies,
                audio_seconds=self._samples / self._scorer.sample_rate,
            )
            await self._ws.send_text(end.model_dump_json())
            await self._ws.close(NORMAL)
        finally:
            for task in (receiver, scorer):
                task.cancel()
            await asyncio.gather(receiver, scorer, return_exceptions=True)

    def _drop(self, reason: str) -> None:
        self._runtime.metrics.frames_dropped.labels(self._model.name, reason).inc()

    async def _receive_frames(self) -> bool:
        """Queue frames until `stop` (True) or the client leaves (False)."""
        idle = self._limits.ws_idle_timeout_seconds
        while True:
            try:
                message = await asyncio.wait_for(self._ws.receive(), timeout=idle)
            except TimeoutError:
                if self._buffered:
                    continue  # the client waits for scores it is owed: not idle
                raise StreamError(
                    GOING_AWAY, "idle_timeout", f"nothing was received for {idle:g} s"
                ) from None
            if message["type"] == "websocket.disconnect":
                return False
            frame = message.get("bytes")
            if frame is not None:
                self._accept(frame)
                continue
            _parse_stop(message.get("text") or "")
            self._queue.put_nowait(None)
            return True

    def _accept(self, frame: bytes) -> None:
        """Queue one frame, or end the stream if it breaks a limit."""
        limit = self._limits.ws_buffer_bytes
        if len(frame) > limit:
            self._drop("too_large")
            raise StreamError(
                MESSAGE_TOO_BIG,
                "frame_too_large",
                f"a frame of {len(frame)} bytes exceeds the stream buffer of {limit} bytes; "
                "send smaller frames",
            )
        try:
            samples = self._scorer.samples_in(frame)
        except StreamFrameError as exc:
            self._drop("bad_frame")
            raise StreamError(POLICY_VIOLATION, "bad_frame", str(exc)) from exc
        most = self._limits.ws_max_stream_seconds
        if (self._samples + samples) / self._scorer.sample_rate > most:
            self._drop("too_long")
            raise StreamError(
                POLICY_VIOLATION,
                "stream_too_long",
                f"the stream passed the limit of {most:g} s of audio; start a new one",
            )
        if self._buffered + len(frame) > limit:
            self._drop("buffer_full")
            raise StreamError(
                TRY_AGAIN_LATER,
                "buffer_full",
                f"more than {limit} bytes of audio are waiting to be scored: the client sends "
                "faster than the server scores; pace the frames and reconnect",
            )
        self._buffered += len(frame)
        self._samples += samples
        self._queue.put_nowait(frame)

    async def _score_frames(self) -> None:
        """Score queued frames in order; after `stop`, flush the end of the stream."""
        pool = self._runtime.pool
        finished = False
        while not finished:
            frames = [await self._queue.get()]
            # Frames that queued up meanwhile go to the pool together: one thread hop instead of
            # many, and the same verdicts, as a stream's blocks do not depend on its frames.
            while frames[-1] is not None and not self._queue.empty():
                frames.append(self._queue.get_nowait())
            finished = frames[-1] is None
            audio = b"".join(frame for frame in frames if frame is not None)
            try:
                verdicts = await pool.run(self._scorer.push, audio) if audio else []
                if finished:
                    verdicts += await pool.run(self._scorer.finish)
            except PoolFullError as exc:
                self._runtime.metrics.pool_rejections.inc()
                self._drop("pool_full")
                raise StreamError(TRY_AGAIN_LATER, "busy", str(exc)) from exc
            except StreamFrameError as exc:
                self._drop("bad_frame")
                raise StreamError(POLICY_VIOLATION, "bad_frame", str(exc)) from exc
            self._buffered -= len(audio)
            await self._send_verdicts(verdicts)

    async def _send_verdicts(self, verdicts: list[BlockVerdict]) -> None:
        if not verdicts:
            return
        self._runtime.metrics.record_verdicts(
            self._model.name,
            self._station,
            "stream",
            [v.anomaly for v in verdicts],
            [v.ratio for v in verdicts],
        )
        self._blocks += len(verdicts)
        self._anomalies += sum(v.anomaly for v in verdicts)
        for v in verdicts:
            message = ScoreMessage(
                seq=v.index,
                start_s=v.start_s,
                end_s=v.end_s,
                score=v.score,
                ratio=v.ratio,
                anomaly=v.anomaly,
            )
            await self._ws.send_text(message.model_dump_json())


def _parse_stop(text: str) -> None:
    try:
        StopMessage.model_validate_json(text)
    except ValidationError:
        raise StreamError(
            POLICY_VIOLATION,
            "protocol",
            'after "start", send binary audio frames and finally {"type": "stop"}; '
            f"got the text {text[:80]!r}",
        ) from None


async def _receive_start(websocket: WebSocket, runtime: Runtime) -> StartMessage:
    idle = runtime.settings.ws_idle_timeout_seconds
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout=idle)
    except TimeoutError:
        raise StreamError(
            GOING_AWAY, "idle_timeout", f"no start message within {idle:g} s"
        ) from None
    text = message.get("text")
    if message["type"] != "websocket.receive" or text is None:
        raise StreamError(
            POLICY_VIOLATION,
            "protocol",
            'the first message must be the JSON text {"type": "start", "sample_rate": ...}',
        )
    try:
        return StartMessage.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'message'}: {err['msg']}"
            for err in exc.errors()
        )
        raise StreamError(POLICY_VIOLATION, "bad_start", f"bad start message: {problems}") from exc


def _ready(model: ServedModel, scorer: AudioScorer, runtime: Runtime) -> ReadyMessage:
    features = scorer.manifest.features
    frame_seconds = features.hop_length / features.sample_rate
    return ReadyMessage(
        model=model.name,
        version=model.version,
        threshold=scorer.manifest.block_decision.threshold,
        model_sample_rate=features.sample_rate,
        block_seconds=features.frames_per_block * frame_seconds,
        hop_seconds=features.block_hop_frames * frame_seconds,
        max_stream_seconds=runtime.settings.ws_max_stream_seconds,
        buffer_bytes=runtime.settings.ws_buffer_bytes,
    )


async def _serve_stream(websocket: WebSocket, runtime: Runtime, name: str) -> None:
    presented = presented_key(websocket.headers, websocket.query_params)
    if not key_accepted(runtime.settings.api_keys, presented):
        raise StreamError(
            POLICY_VIOLATION,
            "unauthorized",
            "a valid API key is required: send 'Authorization: Bearer <key>', "
            "'X-API-Key: <key>' or the api_key query parameter",
        )
    model = runtime.registry.get(name)
    if model is None:
        raise StreamError(POLICY_VIOLATION, "unknown_model", f"no model named {name!r}")
    if model.kind == "windows":
        await serve_sensor_stream(websocket, runtime, model)
        return
    if model.audio_scorer is None:
        raise StreamError(
            POLICY_VIOLATION, "wrong_kind", f"model {name!r} is a {model.kind} model, not audio"
        )
    if not runtime.streams.try_acquire():
        raise StreamError(
            TRY_AGAIN_LATER,
            "too_many_streams",
            f"all {runtime.streams.limit} stream slots are in use; reconnect later",
        )
    try:
        start = await _receive_start(websocket, runtime)
        scorer = AudioStreamScorer(
            model.audio_scorer,
            sample_rate=start.sample_rate,
            encoding=start.encoding,
            channels=start.channels,
            metrics=runtime.metrics,
        )
        await websocket.send_text(_ready(model, model.audio_scorer, runtime).model_dump_json())
        await _AudioStream(websocket, runtime, model, scorer, start.station).run()
    finally:
        runtime.streams.release()


@router.websocket("/v1/models/{name}/stream")
async def stream(websocket: WebSocket, name: str) -> None:
    runtime = get_runtime(websocket)
    # Accept first even to refuse: browsers see the error message, never an HTTP status.
    await websocket.accept()
    try:
        await _serve_stream(websocket, runtime, name)
        return
    except WebSocketDisconnect:
        return  # the client left; nothing to tell it
    except StreamError as closed:
        ending = closed
    except Exception:  # a bug must end this stream, never the process
        logger.exception("stream on model %r failed", name)
        ending = StreamError(INTERNAL_ERROR, "internal", "the server failed; see its log")
    # The client may be gone already: then there is no one to tell.
    with contextlib.suppress(Exception):
        error = ErrorMessage(code=ending.code, message=ending.message)
        await websocket.send_text(error.model_dump_json())
        await websocket.close(ending.close_code, reason=ending.code)

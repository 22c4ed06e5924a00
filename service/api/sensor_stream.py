"""Sensor frames on `WS /v1/models/{name}/stream` when the model is a windows model.

The client sends `{"type": "start"}`, then `{"type": "samples", "samples": [[...], ...]}` frames
of rows by channels, then `{"type": "stop"}`. After each frame the server answers the steps whose
scores became final (a step is final once no later window can cover it) with their verdicts and
the anomalous runs among them; after `stop` it scores the covered rest and ends with a summary.
Frames are scored in order, one at a time, so a client cannot queue more than one frame of work.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.api.routes.windows import AnomalyRunOut, runs_out, samples_from_json
from service.concurrency import PoolFullError
from service.registry import ServedModel
from service.runtime import Runtime
from service.scoring.decision import Decision
from service.scoring.windows import (
    StepScores,
    WindowsScorer,
    WindowsStreamScorer,
    anomaly_runs,
)

# Close codes (RFC 6455), as the audio stream uses them.
NORMAL = 1000
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
TRY_AGAIN_LATER = 1013
TOP_CHANNELS = 3


class SensorStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["start"]
    station: str | None = Field(None, max_length=64)
    channels: list[str] | None = Field(
        None, description="the column order of the frames' rows, if not the model's"
    )


class SensorReady(BaseModel):
    type: Literal["ready"] = "ready"
    model: str
    version: str
    threshold: float
    channels: list[str] = Field(description="the model's channels")
    window: int
    stride: int
    max_frame_bytes: int


class SensorSteps(BaseModel):
    type: Literal["steps"] = "steps"
    first_step: int = Field(description="the stream step of scores[0] (0 = the first row sent)")
    scores: list[float]
    anomalies: list[bool]
    runs: list[AnomalyRunOut] = Field(
        description="runs of anomalous steps in this message (a run may continue in the next)"
    )


class SensorEnd(BaseModel):
    type: Literal["end"] = "end"
    steps_received: int
    steps_scored: int = Field(description="steps after the last full window stay unscored")
    anomalous_steps: int


class SensorError(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str


class _SensorStreamError(Exception):
    """Ends a sensor stream: an error message with `code`, then a close with `close_code`."""

    def __init__(self, close_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.code = code
        self.message = message


class _SensorStream:
    def __init__(self, websocket: WebSocket, runtime: Runtime, model: ServedModel) -> None:
        self._ws = websocket
        self._runtime = runtime
        self._model = model
        self._scorer = WindowsScorer(model.bundle)
        self._stream = WindowsStreamScorer(self._scorer)
        self._decision = Decision(self._scorer.manifest.step_decision.threshold)
        self._station: str | None = None
        self._columns: list[str] | None = None  # the frames' column order, if not the model's
        self._scored = 0
        self._anomalous = 0

    async def run(self) -> None:
        start = await self._start()
        self._station = start.station
        self._columns = start.channels
        manifest = self._scorer.manifest
        ready = SensorReady(
            model=self._model.name,
            version=self._model.version,
            threshold=self._decision.threshold,
            channels=list(self._scorer.channel_names),
            window=manifest.window,
            stride=manifest.stride,
            max_frame_bytes=self._runtime.settings.ws_buffer_bytes,
        )
        await self._ws.send_text(ready.model_dump_json())
        while True:
            text = await self._receive()
            message = _parse(text)
            if message.get("type") == "stop":
                await self._send(await self._in_pool(self._stream.finish))
                end = SensorEnd(
                    steps_received=self._stream.steps_received,
                    steps_scored=self._scored,
                    anomalous_steps=self._anomalous,
                )
                await self._ws.send_text(end.model_dump_json())
                await self._ws.close(NORMAL)
                return
            if message.get("type") != "samples":
                raise _SensorStreamError(
                    POLICY_VIOLATION,
                    "protocol",
                    'send {"type": "samples", "samples": [[...], ...]} frames and finally '
                    '{"type": "stop"}',
                )
            rows: dict[str, Any] = {"samples": message.get("samples")}
            if self._columns is not None:
                rows["channels"] = self._columns
            try:
                samples = samples_from_json(rows, self._scorer.channel_names)
                steps = await self._in_pool(self._stream.push, samples)
            except ValueError as exc:
                self._drop("bad_frame")
                raise _SensorStreamError(POLICY_VIOLATION, "bad_frame", str(exc)) from exc
            await self._send(steps)

    async def _in_pool(self, fn: Any, *args: Any) -> StepScores:
        try:
            result: StepScores = await self._runtime.pool.run(fn, *args)
        except PoolFullError as exc:
            self._runtime.metrics.pool_rejections.inc()
            self._drop("pool_full")
            raise _SensorStreamError(TRY_AGAIN_LATER, "busy", str(exc)) from exc
        return result

    def _drop(self, reason: str) -> None:
        self._runtime.metrics.frames_dropped.labels(self._model.name, reason).inc()

    async def _receive(self) -> str:
        idle = self._runtime.settings.ws_idle_timeout_seconds
        try:
            message = await asyncio.wait_for(self._ws.receive(), timeout=idle)
        except TimeoutError:
            raise _SensorStreamError(
                GOING_AWAY, "idle_timeout", f"nothing was received for {idle:g} s"
            ) from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", NORMAL))
        text = message.get("text")
        if text is None:
            raise _SensorStreamError(
                POLICY_VIOLATION, "protocol", "sensor frames are JSON text, not binary frames"
            )
        limit = self._runtime.settings.ws_buffer_bytes
        if len(text) > limit:
            self._drop("too_large")
            raise _SensorStreamError(
                MESSAGE_TOO_BIG,
                "frame_too_large",
                f"a frame of {len(text)} bytes exceeds {limit} bytes; send fewer rows per frame",
            )
        return str(text)

    async def _start(self) -> SensorStart:
        text = await self._receive()
        try:
            return SensorStart.model_validate_json(text)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'message'}: {err['msg']}"
                for err in exc.errors()
            )
            raise _SensorStreamError(
                POLICY_VIOLATION,
                "bad_start",
                f'the first message must be {{"type": "start"}}: {problems}',
            ) from exc

    async def _send(self, steps: StepScores) -> None:
        if steps.n_steps == 0:
            return
        anomalies = self._decision.anomalies(steps.scores)
        ratios = steps.scores / self._decision.threshold
        self._runtime.metrics.record_verdicts(
            self._model.name, self._station, "stream", anomalies.tolist(), ratios.tolist()
        )
        self._scored += steps.n_steps
        self._anomalous += int(anomalies.sum())
        runs = anomaly_runs(steps, anomalies, self._scorer.channel_names, TOP_CHANNELS)
        message = SensorSteps(
            first_step=steps.first_step,
            scores=steps.scores.tolist(),
            anomalies=anomalies.tolist(),
            runs=runs_out(runs, self._decision.threshold),
        )
        await self._ws.send_text(message.model_dump_json())


def _parse(text: str) -> dict[str, Any]:
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _SensorStreamError(
            POLICY_VIOLATION, "protocol", f"a frame is not valid JSON: {exc}"
        ) from exc
    if not isinstance(message, dict):
        raise _SensorStreamError(POLICY_VIOLATION, "protocol", "a frame must be a JSON object")
    return message


async def serve_sensor_stream(websocket: WebSocket, runtime: Runtime, model: ServedModel) -> None:
    """Run one sensor stream on an accepted, authenticated WebSocket; it ends the connection
    itself, with an error message and close code when something is wrong."""
    if not runtime.streams.try_acquire():
        ending = _SensorStreamError(
            TRY_AGAIN_LATER,
            "too_many_streams",
            f"all {runtime.streams.limit} stream slots are in use; reconnect later",
        )
    else:
        try:
            await _SensorStream(websocket, runtime, model).run()
            return
        except WebSocketDisconnect:
            return
        except _SensorStreamError as closing:
            ending = closing
        finally:
            runtime.streams.release()
    error = SensorError(code=ending.code, message=ending.message)
    try:
        await websocket.send_text(error.model_dump_json())
        await websocket.close(ending.close_code, reason=ending.code)
    except (RuntimeError, WebSocketDisconnect):
        return  # the client is gone: no one to tell

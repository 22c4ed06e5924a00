"""The sensor stream protocol (docs/API.md) and its messages, on `WS /v1/models/{name}/stream`
when the model is a windows model.

The client sends `{"type": "start"}`, then `{"type": "samples", "samples": [[...], ...]}` frames
of rows by channels, then `{"type": "stop"}`. Every samples frame gets exactly one `steps`
answer: the steps whose scores became final (possibly none), so a client may wait for it before
sending the next. `stop` gets the remaining steps, then `end`. The scores are those of posting
the whole series to `/windows`. Frames are scored in order, one at a time, so a client cannot
queue more than one frame of work."""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette import status

from service.api.schemas import AnomalyRunOut
from service.api.streams.connection import StreamConnection
from service.api.streams.errors import StreamError, protocol_error
from service.pipelines.sensor_stream import SensorStream
from service.scoring.batching import ModelWork
from service.scoring.decision import NonFiniteError
from service.scoring.detectors import StepVerdicts, WindowsDetector
from service.sensor_input import SensorInputError, parse_sensor_frame


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
    operating_point: str = Field(description="the operating point whose threshold is applied")
    threshold: float
    channels: list[str] = Field(description="the model's channels")
    window: int
    stride: int
    max_frame_bytes: int


class SensorSteps(BaseModel):
    type: Literal["steps"] = "steps"
    steps_received: int = Field(description="rows received so far, this frame's included")
    first_step: int = Field(description="the stream step of scores[0] (0 = the first row sent)")
    scores: list[float] = Field(description="possibly empty: no step became final")
    anomalies: list[bool]
    runs: list[AnomalyRunOut] = Field(
        description="runs of anomalous steps in this message (a run may continue in the next)"
    )


class SensorEnd(BaseModel):
    type: Literal["end"] = "end"
    steps_received: int
    steps_scored: int = Field(
        description="every step received, unless the stream was shorter than one window"
    )
    anomalous_steps: int


_PROTOCOL = 'send {"type": "samples", "samples": [[...], ...]} frames and finally {"type": "stop"}'


def _bad_frame(message: str) -> StreamError:
    return StreamError(status.WS_1008_POLICY_VIOLATION, "bad_frame", message)


def _handle_frame(stream: SensorStream, text: str) -> tuple[StepVerdicts, bool]:
    """In the stream batcher: one frame -> the verdicts it makes final, and whether it was stop."""
    try:
        message = parse_sensor_frame(text)
    except SensorInputError as exc:
        raise protocol_error(f"{exc}; {_PROTOCOL}") from exc
    kind = message.get("type")
    if kind == "stop":
        return stream.finish(), True
    if kind != "samples":
        raise protocol_error(_PROTOCOL)
    return stream.push(message.get("samples")), False


def _frame_work(stream: SensorStream, text: str) -> ModelWork[tuple[StepVerdicts, bool]]:
    """In the stream batcher: one frame's work, done in the same thread hop as the frames of
    other streams (windows models score each stream's windows on their own)."""
    return ModelWork.done(_handle_frame(stream, text))


class _SensorSession:
    def __init__(self, connection: StreamConnection, detector: WindowsDetector) -> None:
        self._connection = connection
        self._detector = detector

    async def run(self) -> None:
        start = await self._start()
        settings = self._connection.settings
        manifest = self._detector.scorer.manifest
        stream = SensorStream(
            self._detector,
            columns=start.channels,
            max_steps=settings.max_sensor_steps,
            metrics=self._connection.metrics,
            station=start.station,
            events=self._connection.runtime.events,
        )
        await self._connection.send(
            SensorReady(
                model=self._connection.model.name,
                version=self._connection.model.version,
                operating_point=self._detector.operating_point,
                threshold=self._detector.step.threshold,
                channels=list(self._detector.scorer.channel_names),
                window=manifest.window,
                stride=manifest.stride,
                max_frame_bytes=settings.ws_buffer_bytes,
            )
        )
        stopped = False
        while not stopped:
            text = await self._receive()
            try:
                verdicts, stopped = await self._connection.in_batch(
                    functools.partial(_frame_work, stream, text)
                )
            except SensorInputError as exc:
                raise self._connection.refuse_frame("bad_frame", _bad_frame(str(exc))) from exc
            except NonFiniteError as exc:
                error = StreamError(status.WS_1008_POLICY_VIOLATION, "non_finite", str(exc))
                raise self._connection.refuse_frame("bad_frame", error) from exc
            await self._send(stream, verdicts)
        await self._connection.send(
            SensorEnd(
                steps_received=stream.steps_received,
                steps_scored=stream.steps_scored,
                anomalous_steps=stream.anomalous_steps,
            )
        )
        await self._connection.close()

    async def _receive(self) -> str:
        message = await self._connection.receive()
        if message is None:
            raise self._connection.idle_error()
        text = message.get("text")
        if text is None:
            raise protocol_error("sensor frames are JSON text, not binary frames")
        limit = self._connection.settings.ws_buffer_bytes
        if len(text) > limit:
            error = StreamError(
                status.WS_1009_MESSAGE_TOO_BIG,
                "frame_too_large",
                f"a frame of {len(text)} bytes exceeds {limit} bytes; send fewer rows per frame",
            )
            raise self._connection.refuse_frame("too_large", error)
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
            raise StreamError(
                status.WS_1008_POLICY_VIOLATION,
                "bad_start",
                f'the first message must be {{"type": "start"}}: {problems}',
            ) from exc

    async def _send(self, stream: SensorStream, verdicts: StepVerdicts) -> None:
        await self._connection.send(
            SensorSteps(
                steps_received=stream.steps_received,
                first_step=verdicts.first_step,
                scores=verdicts.scores.tolist(),
                anomalies=verdicts.anomalies.tolist(),
                runs=AnomalyRunOut.from_runs(verdicts.runs, self._detector.step.threshold),
            )
        )


async def serve_sensor_stream(connection: StreamConnection, detector: WindowsDetector) -> None:
    """Run the sensor protocol on an accepted connection holding a stream slot."""
    await _SensorSession(connection, detector).run()

"""The audio stream protocol (docs/API.md) and its messages: a start message, binary PCM frames,
`stop`; a `score` message per block as soon as it is complete.

A receiver task takes frames into a bounded per-connection buffer while a scorer task scores
them in the stream batcher (with the frames of other streams). A client that sends faster than
the server scores is pushed back: while the buffer is full the receiver stops reading, so the
socket's buffers fill and the client's sends wait, and nothing is dropped."""

from __future__ import annotations

import asyncio
import functools
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette import status

from service.api.streams.connection import StreamConnection
from service.api.streams.errors import StreamError, protocol_error
from service.audio.resample import UnsupportedRateError, resampling_factors
from service.pipelines.audio_stream import AudioStream, Encoding, StreamFrameError
from service.scoring.batching import FeatureWork, ModelWork, Prepared
from service.scoring.decision import NonFiniteError
from service.scoring.detectors import AudioDetector, BlockVerdict


class StartMessage(BaseModel):
    """The client's first message."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["start"]
    sample_rate: int = Field(
        gt=0,
        description="samples per second per channel, within AUSCULT_MIN_SAMPLE_RATE and "
        "AUSCULT_MAX_SAMPLE_RATE, whose ratio to the model's rate reduces to factors of at "
        "most AUSCULT_MAX_RESAMPLE_FACTOR (by default every multiple of 10 Hz)",
    )
    encoding: Encoding = Field(
        "pcm_s16le", description="pcm_s16le (16-bit integers) or f32le (32-bit floats)"
    )
    channels: int = Field(1, ge=1, le=32, description="interleaved channels, mixed to mono")
    station: str | None = Field(None, max_length=64)


class StopMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["stop"]


class ReadyMessage(BaseModel):
    type: Literal["ready"] = "ready"
    model: str
    version: str
    operating_point: str = Field(description="the operating point whose thresholds are applied")
    threshold: float = Field(description="the block threshold the verdicts use")
    model_sample_rate: int = Field(description="streams at other rates are resampled to it")
    block_seconds: float
    hop_seconds: float = Field(description="seconds between the starts of consecutive blocks")
    max_stream_seconds: float
    buffer_bytes: int = Field(description="audio bytes that may wait for scoring at once")


class ScoreMessage(BaseModel):
    type: Literal["score"] = "score"
    seq: int = Field(description="the block's index from the start of the stream")
    start_s: float
    end_s: float
    score: float
    ratio: float = Field(description="score / threshold")
    anomaly: bool


class EndMessage(BaseModel):
    type: Literal["end"] = "end"
    blocks: int
    anomalies: int
    audio_seconds: float


def _bad_start(problem: str) -> StreamError:
    return StreamError(status.WS_1008_POLICY_VIOLATION, "bad_start", problem)


def _unscorable(exc: NonFiniteError) -> StreamError:
    return StreamError(status.WS_1008_POLICY_VIOLATION, "non_finite", str(exc))


async def _receive_start(connection: StreamConnection, model_rate: int) -> StartMessage:
    message = await connection.receive()
    if message is None:
        raise connection.idle_error("no start message")
    text = message.get("text")
    if text is None:
        raise protocol_error(
            'the first message must be the JSON text {"type": "start", "sample_rate": ...}'
        )
    try:
        start = StartMessage.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'message'}: {err['msg']}"
            for err in exc.errors()
        )
        raise _bad_start(f"bad start message: {problems}") from exc
    low, high = connection.settings.min_sample_rate, connection.settings.max_sample_rate
    if not low <= start.sample_rate <= high:
        raise _bad_start(
            f"bad start message: sample_rate {start.sample_rate} Hz is outside the accepted "
            f"range {low} to {high} Hz"
        )
    try:
        # Only arithmetic: the filter itself is designed in the pool.
        resampling_factors(
            start.sample_rate,
            model_rate,
            min_rate=low,
            max_rate=high,
            max_factor=connection.settings.max_resample_factor,
        )
    except UnsupportedRateError as exc:
        raise _bad_start(f"bad start message: {exc}") from exc
    return start


def _ready(connection: StreamConnection, detector: AudioDetector) -> ReadyMessage:
    features = detector.scorer.manifest.features
    frame_seconds = features.hop_length / features.sample_rate
    return ReadyMessage(
        model=connection.model.name,
        version=connection.model.version,
        operating_point=detector.operating_point,
        threshold=detector.block.threshold,
        model_sample_rate=features.sample_rate,
        block_seconds=features.frames_per_block * frame_seconds,
        hop_seconds=features.block_hop_frames * frame_seconds,
        max_stream_seconds=connection.settings.ws_max_stream_seconds,
        buffer_bytes=connection.settings.ws_buffer_bytes,
    )


async def serve_audio_stream(connection: StreamConnection, detector: AudioDetector) -> None:
    """Run the audio protocol on an accepted connection holding a stream slot."""
    model_rate = detector.scorer.manifest.features.sample_rate
    start = await _receive_start(connection, model_rate)
    settings = connection.settings
    opened = functools.partial(
        AudioStream,
        detector,
        sample_rate=start.sample_rate,
        encoding=start.encoding,
        channels=start.channels,
        min_rate=settings.min_sample_rate,
        max_rate=settings.max_sample_rate,
        max_resample_factor=settings.max_resample_factor,
        metrics=connection.metrics,
        station=start.station,
        events=connection.runtime.events,
    )
    # Designing a resampling filter may take a while at an odd rate: not on the event loop.
    # At the model's rate there is none, and hundreds of streams starting together must not
    # queue for (or be refused by) the request pool.
    stream = opened() if start.sample_rate == model_rate else await connection.in_pool(opened)
    await connection.send(_ready(connection, detector))
    await _AudioSession(connection, stream).run()


class _AudioSession:
    """One started stream: the receiver and scorer tasks."""

    def __init__(self, connection: StreamConnection, stream: AudioStream) -> None:
        self._connection = connection
        self._stream = stream
        self._limits = connection.settings
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._buffered = 0  # bytes received and not yet scored
        self._drained = asyncio.Event()  # set whenever the scorer has taken frames off
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
            await receiver
            await scorer
            end = EndMessage(
                blocks=self._blocks,
                anomalies=self._anomalies,
                audio_seconds=self._samples / self._stream.sample_rate,
            )
            await self._connection.send(end)
            await self._connection.close()
        finally:
            for task in (receiver, scorer):
                task.cancel()
            await asyncio.gather(receiver, scorer, return_exceptions=True)

    async def _receive_frames(self) -> None:
        """Queue frames until `stop`; a client that leaves raises WebSocketDisconnect."""
        while True:
            message = await self._connection.receive()
            if message is None:
                if self._buffered:
                    continue  # the client waits for scores it is owed: not idle
                raise self._connection.idle_error()
            frame = message.get("bytes")
            if frame is not None:
                await self._accept(frame)
                continue
            _parse_stop(message.get("text") or "")
            self._queue.put_nowait(None)
            return

    async def _accept(self, frame: bytes) -> None:
        """Queue one frame once the buffer has room for it (reading nothing meanwhile: the
        back-pressure), or end the stream if it breaks a limit."""
        limit = self._limits.ws_buffer_bytes
        refuse = self._connection.refuse_frame
        if len(frame) > limit:
            raise refuse(
                "too_large",
                StreamError(
                    status.WS_1009_MESSAGE_TOO_BIG,
                    "frame_too_large",
                    f"a frame of {len(frame)} bytes exceeds the stream buffer of {limit} bytes; "
                    "send smaller frames",
                ),
            )
        try:
            samples = self._stream.samples_in(frame)
        except StreamFrameError as exc:
            bad = StreamError(status.WS_1008_POLICY_VIOLATION, "bad_frame", str(exc))
            raise refuse("bad_frame", bad) from exc
        most = self._limits.ws_max_stream_seconds
        if (self._samples + samples) / self._stream.sample_rate > most:
            raise refuse(
                "too_long",
                StreamError(
                    status.WS_1008_POLICY_VIOLATION,
                    "stream_too_long",
                    f"the stream passed the limit of {most:g} s of audio; start a new one",
                ),
            )
        while self._buffered and self._buffered + len(frame) > limit:
            self._drained.clear()
            await self._drained.wait()
        self._buffered += len(frame)
        self._samples += samples
        self._queue.put_nowait(frame)

    async def _score_frames(self) -> None:
        """Score queued frames in order; after `stop`, flush the end of the stream."""
        in_batch = self._connection.in_batch
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
                verdicts = await in_batch(functools.partial(self._windows_of, audio, finished))
            except StreamFrameError as exc:
                bad = StreamError(status.WS_1008_POLICY_VIOLATION, "bad_frame", str(exc))
                raise self._connection.refuse_frame("bad_frame", bad) from exc
            except NonFiniteError as exc:
                raise self._connection.refuse_frame("bad_frame", _unscorable(exc)) from exc
            self._buffered -= len(audio)
            self._drained.set()
            await self._send_verdicts(verdicts)

    def _windows_of(self, audio: bytes, finished: bool) -> Prepared[list[BlockVerdict]]:
        """In the batcher: the analysis windows `audio` (and, when `finished`, the stream's
        end) complete. The batcher turns them into log-mel frames and scores the blocks those
        complete together with those of other streams, then asks for this stream's verdicts."""
        stream = self._stream
        parts = [stream.windows_of(audio)] if audio else []
        if finished:
            parts.append(stream.final_windows())
        if not parts:
            return ModelWork.done([])
        windows = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return FeatureWork(stream.extractor, windows, functools.partial(_blocks_work, stream))

    async def _send_verdicts(self, verdicts: list[BlockVerdict]) -> None:
        self._blocks += len(verdicts)
        self._anomalies += sum(v.anomaly for v in verdicts)
        for v in verdicts:
            await self._connection.send(
                ScoreMessage(
                    seq=v.index,
                    start_s=v.start_s,
                    end_s=v.end_s,
                    score=v.score,
                    ratio=v.ratio,
                    anomaly=v.anomaly,
                )
            )


def _blocks_work(stream: AudioStream, frames: np.ndarray) -> ModelWork[list[BlockVerdict]]:
    """A stream's new log-mel frames -> the blocks they complete, to be scored with other
    streams' and turned into this stream's verdicts. Even with no block, `verdicts` runs:
    the stream's end is recorded there."""
    batch = stream.blocks_of_frames(frames)
    return ModelWork(
        stream.scorer, batch.blocks, lambda scores, bands: stream.verdicts(batch, scores, bands)
    )


def _parse_stop(text: str) -> None:
    try:
        StopMessage.model_validate_json(text)
    except ValidationError:
        raise protocol_error(
            'after "start", send binary audio frames and finally {"type": "stop"}; '
            f"got the text {text[:80]!r}"
        ) from None

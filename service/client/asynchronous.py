"""`AsyncAuscultClient`: the service's HTTP API and streams from asyncio code (httpx,
websockets' asyncio client)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

import httpx
import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from service.api.event_schemas import EventDetail, EventOut, EventPageOut
from service.api.schemas import ClipVerdict, ModelDetail, ModelList, ReloadReport, WindowsVerdict
from service.api.streams.audio import EndMessage, ReadyMessage, ScoreMessage
from service.api.streams.sensor import SensorEnd, SensorReady, SensorSteps
from service.client import protocol
from service.client.errors import StreamClosedError
from service.client.protocol import AudioSource, EventQuery, Row, SensorFilePath
from service.events.queries import MAX_PAGE
from service.pipelines.audio_stream import Encoding


class AsyncAuscultClient:
    """`AuscultClient` for asyncio: the same methods, awaited; streams are async iterators and
    also take async iterables of frames or rows (a live source that must not block the loop)."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._headers = protocol.headers(api_key)
        self._timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.url, headers=self._headers, timeout=timeout)

    async def __aenter__(self) -> AsyncAuscultClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def list_models(self) -> ModelList:
        return protocol.parsed(await self._http.get("/v1/models"), ModelList)

    async def model(self, name: str) -> ModelDetail:
        return protocol.parsed(await self._http.get(f"/v1/models/{name}"), ModelDetail)

    async def reload(self) -> ReloadReport:
        return protocol.parsed(await self._http.post("/v1/models/reload"), ReloadReport)

    async def events(
        self, query: EventQuery | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> EventPageOut:
        """One page of the events the service kept, newest first; pass the page's
        `next_cursor` as `cursor` for the next one."""
        params = (query or EventQuery()).params(limit, cursor)
        return protocol.parsed(await self._http.get("/v1/events", params=params), EventPageOut)

    async def iter_events(
        self, query: EventQuery | None = None, *, page_size: int = MAX_PAGE
    ) -> AsyncIterator[EventOut]:
        """Every event matching `query`, newest first, `page_size` a request."""
        cursor = None
        while True:
            page = await self.events(query, limit=page_size, cursor=cursor)
            for event in page.events:
                yield event
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def event(self, event_id: str) -> EventDetail:
        """One event with its scores over time (and, for audio, band errors)."""
        response = await self._http.get(protocol.event_path(event_id))
        return protocol.parsed(response, EventDetail)

    async def event_audio(self, event_id: str) -> bytes:
        """The event's audio as FLAC bytes (404 when none was kept)."""
        response = await self._http.get(protocol.event_path(event_id, "/audio"))
        protocol.raise_for_error(response)
        return response.content

    async def label_event(
        self,
        event_id: str,
        label: Literal["anomaly", "normal"],
        *,
        note: str | None = None,
        by: str | None = None,
    ) -> EventOut:
        """An operator's verdict: 'anomaly' confirms an alarm, 'normal' calls it false."""
        response = await self._http.put(
            protocol.event_path(event_id, "/label"), json=protocol.label_body(label, note, by)
        )
        return protocol.parsed(response, EventOut)

    async def score_file(
        self, model: str, path: str | Path, *, station: str | None = None
    ) -> ClipVerdict:
        data = await asyncio.to_thread(Path(path).read_bytes)
        return await self.score_bytes(model, data, station=station)

    async def score_bytes(
        self, model: str, data: bytes, *, station: str | None = None
    ) -> ClipVerdict:
        request = protocol.score_request(self._http, model, data, station)
        return protocol.parsed(await self._http.send(request), ClipVerdict)

    async def score_series(
        self,
        model: str,
        samples: SensorFilePath | Sequence[Row] | np.ndarray,
        *,
        channels: Sequence[str] | None = None,
        station: str | None = None,
        top_channels: int | None = None,
    ) -> WindowsVerdict:
        request = protocol.windows_request(
            self._http, model, samples, channels, station, top_channels
        )
        return protocol.parsed(await self._http.send(request), WindowsVerdict)

    def _connect(self, model: str) -> connect:
        return connect(
            protocol.ws_url(self.url, model),
            additional_headers=self._headers,
            compression=None,
            open_timeout=self._timeout,
            proxy=None,
        )

    async def stream_audio(
        self,
        model: str,
        source: AudioSource | AsyncIterable[bytes | np.ndarray],
        *,
        sample_rate: int | None = None,
        encoding: Encoding = "pcm_s16le",
        channels: int = 1,
        station: str | None = None,
    ) -> AsyncIterator[ScoreMessage]:
        """As `AuscultClient.stream_audio`; frames are sent by a task of their own while the
        verdicts are yielded."""
        frames: AsyncIterable[bytes | np.ndarray] | None = None
        if isinstance(source, AsyncIterable):
            frames, source = source, []
        plan = protocol.audio_plan(
            source, sample_rate=sample_rate, encoding=encoding, channels=channels, station=station
        )
        async with self._connect(model) as ws:
            try:
                await ws.send(plan.start.model_dump_json(exclude_none=True))
                ready = protocol.server_message(await ws.recv(), ReadyMessage)
                pacer = protocol.AudioPacer(ready, plan)
                credit = asyncio.Condition()
                pieces = _frames(plan, frames, encoding)
                sender = asyncio.create_task(_send_audio(ws, pieces, pacer, credit))
                try:
                    async for text in ws:
                        message = protocol.audio_message(text)
                        if isinstance(message, EndMessage):
                            break
                        pacer.scored(message)
                        async with credit:
                            credit.notify_all()
                        yield message
                    else:
                        raise StreamClosedError("closed", "the stream ended without an end message")
                    await sender
                finally:
                    sender.cancel()
                    await asyncio.gather(sender, return_exceptions=True)
            except ConnectionClosed as exc:
                raise protocol.closed_early(exc) from exc

    async def stream_sensors(
        self,
        model: str,
        rows: SensorFilePath | Iterable[Row] | AsyncIterable[Row],
        *,
        rows_per_frame: int = 1,
        channels: Sequence[str] | None = None,
        station: str | None = None,
    ) -> AsyncIterator[SensorSteps]:
        """As `AuscultClient.stream_sensors`; a CSV file is read in the event loop's thread, a
        row at a time."""
        if not isinstance(rows, AsyncIterable):
            rows, channels = protocol.sensor_rows(rows, channels)
        async with self._connect(model) as ws:
            try:
                await ws.send(protocol.sensor_start(channels, station))
                ready = protocol.server_message(await ws.recv(), SensorReady)
                async for batch in _batches(rows, rows_per_frame):
                    for frame in protocol.sensor_frames(batch, len(batch), ready.max_frame_bytes):
                        await ws.send(frame)
                        steps = protocol.server_message(await ws.recv(), SensorSteps)
                        if steps.scores:
                            yield steps
                await ws.send(protocol.STOP)
                last = protocol.server_message(await ws.recv(), SensorSteps)
                if last.scores:
                    yield last
                protocol.server_message(await ws.recv(), SensorEnd)
            except ConnectionClosed as exc:
                raise protocol.closed_early(exc) from exc


async def _frames(
    plan: protocol.AudioPlan,
    frames: AsyncIterable[bytes | np.ndarray] | None,
    encoding: Encoding,
) -> AsyncIterator[bytes]:
    if frames is None:
        for frame in plan.frames:
            yield frame
        return
    async for given in frames:
        yield protocol.frame_bytes(given, encoding)


async def _send_audio(
    ws: ClientConnection,
    frames: AsyncIterator[bytes],
    pacer: protocol.AudioPacer,
    credit: asyncio.Condition,
) -> None:
    async for frame in frames:
        for piece in pacer.pieces(frame):
            async with credit:
                await credit.wait_for(functools.partial(pacer.may_send, len(piece)))
            await ws.send(piece)
            pacer.sent(len(piece))
    await ws.send(protocol.STOP)


async def _batches(rows: Iterable[Row] | AsyncIterable[Row], size: int) -> AsyncIterator[list[Row]]:
    if size < 1:
        raise ValueError("rows_per_frame must be at least 1")
    batch: list[Row] = []
    if isinstance(rows, AsyncIterable):
        async for row in rows:
            batch.append(row)
            if len(batch) == size:
                yield batch
                batch = []
    else:
        for row in rows:
            batch.append(row)
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch

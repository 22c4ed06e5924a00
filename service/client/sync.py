"""`AuscultClient`: the service's HTTP API and streams from synchronous code (httpx,
websockets' sync client)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

import httpx
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from service.api.event_schemas import EventDetail, EventOut, EventPageOut
from service.api.schemas import ClipVerdict, ModelDetail, ModelList, ReloadReport, WindowsVerdict
from service.api.streams.audio import EndMessage, ReadyMessage, ScoreMessage
from service.api.streams.sensor import SensorEnd, SensorReady, SensorSteps
from service.client import protocol
from service.client.protocol import AudioSource, EventQuery, Row, SensorFilePath
from service.events.queries import MAX_PAGE
from service.pipelines.audio_stream import Encoding


class AuscultClient:
    """A client of one Auscult server. `api_key` is sent as a Bearer token. Use it as a context
    manager, or call `close()`. HTTP errors raise AuscultError; streams the server ends with an
    error raise StreamClosedError."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._headers = protocol.headers(api_key)
        self._timeout = timeout
        self._http = httpx.Client(base_url=self.url, headers=self._headers, timeout=timeout)

    def __enter__(self) -> AuscultClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def list_models(self) -> ModelList:
        """The served models and the refused bundles."""
        return protocol.parsed(self._http.get("/v1/models"), ModelList)

    def model(self, name: str) -> ModelDetail:
        """One model's status and whole manifest."""
        return protocol.parsed(self._http.get(f"/v1/models/{name}"), ModelDetail)

    def reload(self) -> ReloadReport:
        """Load new or changed bundles now, in every worker."""
        return protocol.parsed(self._http.post("/v1/models/reload"), ReloadReport)

    def events(
        self, query: EventQuery | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> EventPageOut:
        """One page of the events the service kept, newest first; pass the page's
        `next_cursor` as `cursor` for the next one."""
        params = (query or EventQuery()).params(limit, cursor)
        return protocol.parsed(self._http.get("/v1/events", params=params), EventPageOut)

    def iter_events(
        self, query: EventQuery | None = None, *, page_size: int = MAX_PAGE
    ) -> Iterator[EventOut]:
        """Every event matching `query`, newest first, `page_size` a request."""
        cursor = None
        while True:
            page = self.events(query, limit=page_size, cursor=cursor)
            yield from page.events
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def event(self, event_id: str) -> EventDetail:
        """One event with its scores over time (and, for audio, band errors)."""
        return protocol.parsed(self._http.get(protocol.event_path(event_id)), EventDetail)

    def event_audio(self, event_id: str) -> bytes:
        """The event's audio as FLAC bytes (404 when none was kept)."""
        response = self._http.get(protocol.event_path(event_id, "/audio"))
        protocol.raise_for_error(response)
        return response.content

    def label_event(
        self,
        event_id: str,
        label: Literal["anomaly", "normal"],
        *,
        note: str | None = None,
        by: str | None = None,
    ) -> EventOut:
        """An operator's verdict: 'anomaly' confirms an alarm, 'normal' calls it false."""
        response = self._http.put(
            protocol.event_path(event_id, "/label"), json=protocol.label_body(label, note, by)
        )
        return protocol.parsed(response, EventOut)

    def score_file(
        self, model: str, path: str | Path, *, station: str | None = None
    ) -> ClipVerdict:
        """Score a WAV or FLAC file."""
        return self.score_bytes(model, Path(path).read_bytes(), station=station)

    def score_bytes(self, model: str, data: bytes, *, station: str | None = None) -> ClipVerdict:
        """Score the bytes of a WAV or FLAC file."""
        request = protocol.score_request(self._http, model, data, station)
        return protocol.parsed(self._http.send(request), ClipVerdict)

    def score_series(
        self,
        model: str,
        samples: SensorFilePath | Sequence[Row] | np.ndarray,
        *,
        channels: Sequence[str] | None = None,
        station: str | None = None,
        top_channels: int | None = None,
    ) -> WindowsVerdict:
        """Score a sensor series, rows by channels (`channels` names the columns when they are
        not in the model's order), or a sensor CSV file (its header names the columns)."""
        request = protocol.windows_request(
            self._http, model, samples, channels, station, top_channels
        )
        return protocol.parsed(self._http.send(request), WindowsVerdict)

    def _connect(self, model: str) -> ClientConnection:
        return connect(
            protocol.ws_url(self.url, model),
            additional_headers=self._headers,
            compression=None,  # PCM does not compress; the server does not negotiate it
            open_timeout=self._timeout,
            proxy=None,
        )

    def stream_audio(
        self,
        model: str,
        source: AudioSource,
        *,
        sample_rate: int | None = None,
        encoding: Encoding = "pcm_s16le",
        channels: int = 1,
        station: str | None = None,
    ) -> Iterator[ScoreMessage]:
        """Stream a WAV/FLAC file (sent as decoded, so the verdicts are those of `score_file`)
        or frames of PCM (bytes or arrays at `sample_rate`, in `encoding`, `channels`
        interleaved); yield each block's verdict as soon as the server sends it. Frames are
        paced to what the server has scored, so a file never overruns its buffer."""
        plan = protocol.audio_plan(
            source, sample_rate=sample_rate, encoding=encoding, channels=channels, station=station
        )
        with self._connect(model) as ws:
            try:
                ws.send(plan.start.model_dump_json(exclude_none=True))
                ready = protocol.server_message(ws.recv(), ReadyMessage)
                pacer = protocol.AudioPacer(ready, plan)
                for frame in plan.frames:
                    for piece in pacer.pieces(frame):
                        while not pacer.may_send(len(piece)):
                            yield from _audio_messages(ws.recv(), pacer)
                        ws.send(piece)
                        pacer.sent(len(piece))
                        yield from _arrived(ws, pacer)
                ws.send(protocol.STOP)
                while True:
                    message = protocol.audio_message(ws.recv())
                    if isinstance(message, EndMessage):
                        return
                    yield message
            except ConnectionClosed as exc:
                raise protocol.closed_early(exc, _unread(ws)) from exc

    def stream_sensors(
        self,
        model: str,
        rows: SensorFilePath | Iterable[Row],
        *,
        rows_per_frame: int = 1,
        channels: Sequence[str] | None = None,
        station: str | None = None,
    ) -> Iterator[SensorSteps]:
        """Stream sensor rows (from a live source such as a generator, or a recorded series or
        a sensor CSV file, read as it goes, with a larger `rows_per_frame`) and yield every
        `steps` message that holds verdicts; the scores are those of `score_series` on the
        whole series. The server answers every frame, and each answer is read before the next
        frame goes."""
        rows, channels = protocol.sensor_rows(rows, channels)
        with self._connect(model) as ws:
            try:
                ws.send(protocol.sensor_start(channels, station))
                ready = protocol.server_message(ws.recv(), SensorReady)
                for frame in protocol.sensor_frames(rows, rows_per_frame, ready.max_frame_bytes):
                    ws.send(frame)
                    steps = protocol.server_message(ws.recv(), SensorSteps)
                    if steps.scores:
                        yield steps
                ws.send(protocol.STOP)
                last = protocol.server_message(ws.recv(), SensorSteps)
                if last.scores:
                    yield last
                protocol.server_message(ws.recv(), SensorEnd)
            except ConnectionClosed as exc:
                raise protocol.closed_early(exc, _unread(ws)) from exc


def _audio_messages(text: str | bytes, pacer: protocol.AudioPacer) -> Iterator[ScoreMessage]:
    message = protocol.server_message(text, ScoreMessage)
    pacer.scored(message)
    yield message


def _arrived(ws: ClientConnection, pacer: protocol.AudioPacer) -> Iterator[ScoreMessage]:
    """The verdicts already received, without waiting for more."""
    while True:
        try:
            text = ws.recv(timeout=0)
        except TimeoutError:
            return
        yield from _audio_messages(text, pacer)


def _unread(ws: ClientConnection) -> Iterator[str | bytes]:
    """Messages received before the connection closed and not read yet."""
    while True:
        try:
            yield ws.recv(timeout=0)
        except (ConnectionClosed, TimeoutError):
            return

"""What the sync and async clients share: the HTTP requests and answers of /v1, and the two
stream protocols of `WS /v1/models/{name}/stream` (service/api/streams/) as client-side steps:
start messages, audio frames paced to the server's buffer, sensor frames within its size limit,
and the server's messages parsed into the service's own message models."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import numpy as np
from pydantic import BaseModel, ValidationError
from websockets.exceptions import ConnectionClosed

from service.api.event_schemas import LabelIn
from service.api.streams.audio import EndMessage, ReadyMessage, ScoreMessage, StartMessage
from service.api.streams.errors import ErrorMessage
from service.api.streams.sensor import SensorEnd, SensorReady, SensorStart, SensorSteps
from service.audio.decode import decode_audio
from service.client.errors import AuscultError, StreamClosedError
from service.client.sensor_csv import sensor_file
from service.pipelines.audio_stream import Encoding

Model = TypeVar("Model", bound=BaseModel)
# A file to stream, or audio frames: raw little-endian bytes, or arrays (int16 for pcm_s16le,
# float32 for f32le; interleaved channels).
AudioFrames = Iterable[bytes | np.ndarray]
AudioSource = str | os.PathLike[str] | AudioFrames
Row = Sequence[float] | np.ndarray
# A sensor CSV file (service/client/sensor_csv.py), or rows by channels.
SensorFilePath = str | os.PathLike[str]

# A file is sent in pieces of this much audio: small enough to be scored as it arrives.
FILE_FRAME_SECONDS = 0.25
_SAMPLE_BYTES: dict[str, int] = {"pcm_s16le": 2, "f32le": 4}
_SAMPLE_TYPES: dict[str, str] = {"pcm_s16le": "<i2", "f32le": "<f4"}
STOP = json.dumps({"type": "stop"})


def headers(api_key: str | None) -> dict[str, str]:
    return {} if api_key is None else {"Authorization": f"Bearer {api_key}"}


def ws_url(base_url: str, model: str) -> str:
    url = httpx.URL(base_url)
    scheme = "wss" if url.scheme == "https" else "ws"
    return str(url.copy_with(scheme=scheme).join(f"/v1/models/{model}/stream"))


def parsed(response: httpx.Response, model: type[Model]) -> Model:
    """The answer as `model`, or AuscultError with the server's `detail`."""
    raise_for_error(response)
    return model.model_validate_json(response.content)


def raise_for_error(response: httpx.Response) -> None:
    """AuscultError with the server's `detail` unless the answer is a success."""
    if response.is_success:
        return
    try:
        detail = str(response.json()["detail"])
    except (ValueError, KeyError, TypeError):
        detail = response.text or response.reason_phrase
    retry_after = response.headers.get("retry-after", "")
    raise AuscultError(
        response.status_code, detail, int(retry_after) if retry_after.isdigit() else None
    )


def score_request(
    http: httpx.Client | httpx.AsyncClient, model: str, data: bytes, station: str | None
) -> httpx.Request:
    """`POST /v1/models/{model}/score` of a WAV or FLAC file's bytes, for either client to
    send."""
    return http.build_request(
        "POST",
        f"/v1/models/{model}/score",
        content=data,
        params=_station_params(station),
        headers={"Content-Type": _audio_content_type(data)},
    )


def sensor_rows(
    source: SensorFilePath | Iterable[Row], channels: Sequence[str] | None
) -> tuple[Iterable[Row], Sequence[str] | None]:
    """Rows and their column names: a CSV file's rows named by its header (unless `channels`
    says otherwise), or the rows given."""
    if isinstance(source, str | os.PathLike):
        table = sensor_file(source)
        return table.rows(), table.channels if channels is None else channels
    return source, channels


def windows_request(
    http: httpx.Client | httpx.AsyncClient,
    model: str,
    samples: SensorFilePath | Sequence[Row] | np.ndarray,
    channels: Sequence[str] | None,
    station: str | None,
    top_channels: int | None,
) -> httpx.Request:
    """`POST /v1/models/{model}/windows` of a sensor series, for either client to send."""
    given, channels = sensor_rows(samples, channels)
    rows = _rows(given)
    return http.build_request(
        "POST",
        f"/v1/models/{model}/windows",
        json=rows if channels is None else {"samples": rows, "channels": list(channels)},
        params=_station_params(station, top_channels=top_channels),
    )


@dataclass(frozen=True)
class EventQuery:
    """The filters of GET /v1/events (docs/FEEDBACK.md); None leaves a filter out."""

    model: str | None = None
    station: str | None = None
    verdict: Literal["anomaly", "normal"] | None = None
    label: Literal["anomaly", "normal", "none"] | None = None
    since: datetime | None = None
    until: datetime | None = None

    def params(self, limit: int, cursor: str | None) -> dict[str, Any]:
        chosen = {k: v for k, v in vars(self).items() if v is not None}
        times = {k: v.isoformat() for k, v in chosen.items() if isinstance(v, datetime)}
        return {**chosen, **times, "limit": limit} | ({"cursor": cursor} if cursor else {})


def label_body(label: Literal["anomaly", "normal"], note: str | None, by: str | None) -> Any:
    return LabelIn(label=label, note=note, by=by).model_dump(exclude_none=True)


def event_path(event_id: str, part: str = "") -> str:
    # Ids are 32 hex digits: anything else would address another route.
    if not (len(event_id) == 32 and all(c in "0123456789abcdef" for c in event_id)):
        raise ValueError(f"{event_id!r} is not an event id (32 hex digits)")
    return f"/v1/events/{event_id}{part}"


def _audio_content_type(data: bytes) -> str:
    return "audio/flac" if data[:4] == b"fLaC" else "audio/wav"


def _station_params(station: str | None, **others: Any) -> dict[str, Any]:
    params = {"station": station, **others}
    return {name: value for name, value in params.items() if value is not None}


def _rows(samples: Iterable[Row] | np.ndarray) -> list[list[float]]:
    if isinstance(samples, np.ndarray):
        return np.asarray(samples, dtype=np.float64).tolist()  # type: ignore[no-any-return]
    return [[float(value) for value in row] for row in samples]


# Stream messages --------------------------------------------------------------------------


def server_message(text: str | bytes, *expected: type[Model]) -> Model:
    """The message as one of `expected`; an `error` message raises StreamClosedError."""
    try:
        content = json.loads(text)
    except ValueError as exc:
        raise StreamClosedError("protocol", f"the server sent {text[:80]!r}") from exc
    kind = content.get("type") if isinstance(content, dict) else None
    if kind == "error":
        error = ErrorMessage.model_validate(content)
        raise StreamClosedError(error.code, error.message)
    for model in expected:
        if model.model_fields["type"].default == kind:
            try:
                return model.model_validate(content)
            except ValidationError as exc:
                raise StreamClosedError("protocol", str(exc)) from exc
    raise StreamClosedError("protocol", f"unexpected {kind!r} message from the server")


def audio_message(text: str | bytes) -> ScoreMessage | EndMessage:
    message = server_message(text, ScoreMessage, EndMessage)
    assert isinstance(message, ScoreMessage | EndMessage)
    return message


def closed_early(exc: ConnectionClosed, unread: Iterable[str | bytes] = ()) -> StreamClosedError:
    """Why a stream closed before its end: the server's error message if it is among the
    messages not read yet, else the close frame's reason (the server closes with the code)."""
    for text in unread:
        try:
            server_message(text)
        except StreamClosedError as error:
            if error.code != "protocol":
                return error
    received = exc.rcvd
    if received is not None and received.reason:
        return StreamClosedError(received.reason, f"the server closed the stream ({received})")
    return StreamClosedError("closed", f"the connection closed before the stream ended: {exc}")


@dataclass
class AudioPlan:
    """An audio source as a start message and the frames to send."""

    start: StartMessage
    frames: Iterable[bytes]

    @property
    def bytes_per_second(self) -> int:
        return self.start.sample_rate * self.start.channels * _SAMPLE_BYTES[self.start.encoding]

    @property
    def bytes_per_frame(self) -> int:
        return self.start.channels * _SAMPLE_BYTES[self.start.encoding]


def audio_plan(
    source: AudioSource,
    *,
    sample_rate: int | None,
    encoding: Encoding,
    channels: int,
    station: str | None,
) -> AudioPlan:
    """A file is decoded as `POST /score` decodes it (mono float32) and sent as f32le, so the
    stream's verdicts are those of scoring the file; frames go as given."""
    if isinstance(source, str | os.PathLike):
        decoded = decode_audio(Path(source))
        start = StartMessage(
            type="start", sample_rate=decoded.sample_rate, encoding="f32le", channels=1,
            station=station,
        )  # fmt: skip
        step = max(1, round(FILE_FRAME_SECONDS * decoded.sample_rate))
        samples = decoded.samples.astype("<f4")
        pieces = (samples[i : i + step].tobytes() for i in range(0, samples.size, step))
        return AudioPlan(start, pieces)
    if sample_rate is None:
        raise ValueError("streaming frames needs their sample_rate")
    start = StartMessage(
        type="start", sample_rate=sample_rate, encoding=encoding, channels=channels,
        station=station,
    )  # fmt: skip
    return AudioPlan(start, (frame_bytes(frame, encoding) for frame in source))


def frame_bytes(frame: bytes | np.ndarray, encoding: str) -> bytes:
    if isinstance(frame, np.ndarray):
        return np.ascontiguousarray(frame, dtype=_SAMPLE_TYPES[encoding]).tobytes()
    return bytes(frame)


class AudioPacer:
    """Keeps the audio the server has not scored yet within half its buffer: past the buffer the
    server stops reading the socket, and a client far ahead only sees its verdicts later. A
    `score` message for a block ending at t seconds shows the server has taken the audio up to t."""

    def __init__(self, ready: ReadyMessage, plan: AudioPlan) -> None:
        self._bytes_per_second = plan.bytes_per_second
        per_frame = plan.bytes_per_frame
        # At least two blocks in flight, or no block could ever complete.
        window = max(
            ready.buffer_bytes // 2,
            math.ceil(2 * ready.block_seconds * self._bytes_per_second),
        )
        self.window = min(window, ready.buffer_bytes)
        self.piece = max(per_frame, (self.window // 4) // per_frame * per_frame)
        self._sent = 0
        self._scored_s = 0.0

    def pieces(self, frame: bytes) -> Iterator[bytes]:
        for at in range(0, len(frame), self.piece):
            yield frame[at : at + self.piece]

    def may_send(self, size: int) -> bool:
        in_flight = self._sent - self._scored_s * self._bytes_per_second
        return in_flight <= 0 or in_flight + size <= self.window

    def sent(self, size: int) -> None:
        self._sent += size

    def scored(self, message: ScoreMessage) -> None:
        self._scored_s = max(self._scored_s, message.end_s)


def sensor_start(channels: Sequence[str] | None, station: str | None) -> str:
    start = SensorStart(
        type="start", station=station, channels=None if channels is None else list(channels)
    )
    return start.model_dump_json(exclude_none=True)


def sensor_frames(rows: Iterable[Row], rows_per_frame: int, max_bytes: int) -> Iterator[str]:
    """`samples` frames of up to rows_per_frame rows, each within the server's max_bytes."""
    if rows_per_frame < 1:
        raise ValueError("rows_per_frame must be at least 1")
    batch: list[list[float]] = []
    for row in rows:
        batch.append(_rows([row])[0])
        if len(batch) == rows_per_frame:
            yield from _within(batch, max_bytes)
            batch = []
    if batch:
        yield from _within(batch, max_bytes)


def _within(rows: list[list[float]], max_bytes: int) -> Iterator[str]:
    frame = json.dumps({"type": "samples", "samples": rows})
    if len(frame) <= max_bytes or len(rows) == 1:
        yield frame
        return
    half = len(rows) // 2
    yield from _within(rows[:half], max_bytes)
    yield from _within(rows[half:], max_bytes)


__all__ = [
    "AudioFrames",
    "AudioSource",
    "EndMessage",
    "ReadyMessage",
    "Row",
    "ScoreMessage",
    "SensorEnd",
    "SensorFilePath",
    "SensorReady",
    "SensorSteps",
]

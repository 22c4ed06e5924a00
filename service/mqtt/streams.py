"""One bridge stream: a model's stream pipeline (the WebSocket's `SensorStream` or
`AudioStream`) fed by input messages, turned into result messages. Blocking: everything here
runs in the bridge's scoring threads, one message of a stream at a time."""

from __future__ import annotations

from pydantic import BaseModel

from service.config import Settings
from service.events.capture import EventSink
from service.features.logmel import mel_band_centres_hz
from service.metrics import Metrics
from service.mqtt.payloads import PayloadError, SensorFrame, decode_f32_rows
from service.mqtt.results import EndReason, EndResult, ResultHead, blocks_messages, steps_messages
from service.mqtt.topics import StreamKey
from service.pipelines.audio_stream import AudioStream, StreamFrameError
from service.pipelines.sensor_stream import SensorStream
from service.registry import ServedModel
from service.scoring.detectors import BlockVerdict, StepVerdicts
from service.sensor_input import SensorInputError


class WrongKindError(ValueError):
    """Input of one modality for a model of the other."""


class Outcome(BaseModel):
    """What one input message gave: results to publish, whether the stream ended, and whether
    it was a redelivery that was dropped."""

    results: list[BaseModel] = []
    ended: bool = False
    duplicate: bool = False


class SensorBridgeStream:
    def __init__(
        self,
        key: StreamKey,
        served: ServedModel,
        settings: Settings,
        metrics: Metrics,
        events: EventSink | None = None,
    ) -> None:
        detector = served.windows
        if detector is None:
            raise WrongKindError(
                f"model {served.name!r} scores audio, not sensor frames; publish PCM to "
                f".../{key.device}/audio"
            )
        self._detector = detector
        self._settings = settings
        self._metrics = metrics
        self._events = events
        self._key = key
        self._head = ResultHead(
            model=served.name,
            version=served.version,
            device=key.device,
            operating_point=detector.operating_point,
            threshold=detector.step.threshold,
        )
        self._stream: SensorStream | None = None  # made by the first rows, with their columns
        self._columns: list[str] | None = None
        self._last_seq: int | None = None

    def frame(self, frame: SensorFrame) -> Outcome:
        """A JSON frame. Raises PayloadError (the stream carries on) and NonFiniteError."""
        if frame.seq is not None:
            if self._last_seq is not None and frame.seq <= self._last_seq:
                return Outcome(duplicate=True)
            self._last_seq = frame.seq
        results: list[BaseModel] = []
        if frame.samples is not None:
            results += self._push(frame.samples, frame.channels, frame.station)
        if frame.end:
            return Outcome(results=results + self.end("end"), ended=True)
        return Outcome(results=results)

    def f32(self, payload: bytes) -> Outcome:
        """Binary rows in the model's channel order; an empty payload ends the stream."""
        if not payload:
            return Outcome(results=self.end("end"), ended=True)
        rows = decode_f32_rows(payload, len(self._detector.scorer.channel_names))
        return Outcome(results=self._push(rows, None, None))

    def end(self, reason: EndReason) -> list[BaseModel]:
        """The last verdicts and the end message; the stream is then over."""
        stream = self._stream
        results: list[BaseModel] = []
        if stream is not None:
            results += self._results(stream, stream.finish())
        results.append(
            EndResult(
                **self._head.model_dump(),
                reason=reason,
                verdicts=stream.steps_scored if stream is not None else 0,
                anomalies=stream.anomalous_steps if stream is not None else 0,
            )
        )
        return results

    def _push(
        self, rows: object, columns: list[str] | None, station: str | None
    ) -> list[BaseModel]:
        if self._stream is None:
            self._columns = columns
            self._stream = SensorStream(
                self._detector,
                columns=columns,
                max_steps=self._settings.max_sensor_steps,
                metrics=self._metrics,
                station=station or self._key.device,
                events=self._events,
            )
        elif columns is not None and columns != self._columns:
            raise PayloadError(
                f"the frame's channels {columns} differ from the stream's {self._columns}; "
                "keep one column order per stream"
            )
        try:
            verdicts = self._stream.push(rows)
        except SensorInputError as exc:
            raise PayloadError(str(exc)) from exc
        return self._results(self._stream, verdicts)

    def _results(self, stream: SensorStream, verdicts: StepVerdicts) -> list[BaseModel]:
        if verdicts.n_steps == 0:
            return []
        steps, alarms = steps_messages(self._head, verdicts, stream.steps_received)
        return [steps, *alarms]


class AudioBridgeStream:
    def __init__(
        self,
        key: StreamKey,
        served: ServedModel,
        settings: Settings,
        metrics: Metrics,
        events: EventSink | None = None,
    ) -> None:
        """Raises WrongKindError, and UnsupportedRateError for the topic's sample rate."""
        detector = served.audio
        if detector is None:
            raise WrongKindError(
                f"model {served.name!r} scores sensor series, not audio; publish to "
                f".../{key.device}/sensor"
            )
        assert key.sample_rate is not None
        self._stream = AudioStream(
            detector,
            sample_rate=key.sample_rate,
            encoding="pcm_s16le",
            channels=1,
            min_rate=settings.min_sample_rate,
            max_rate=settings.max_sample_rate,
            max_resample_factor=settings.max_resample_factor,
            metrics=metrics,
            station=key.device,
            events=events,
        )
        self._head = ResultHead(
            model=served.name,
            version=served.version,
            device=key.device,
            operating_point=detector.operating_point,
            threshold=detector.block.threshold,
        )
        self._band_hz = mel_band_centres_hz(detector.scorer.manifest.features)
        self._blocks = 0
        self._anomalies = 0

    def pcm(self, payload: bytes) -> Outcome:
        """A PCM chunk; an empty payload ends the stream. Raises PayloadError (a ragged or
        out-of-range chunk: the stream carries on) and NonFiniteError."""
        if not payload:
            return Outcome(results=self.end("end"), ended=True)
        try:
            self._stream.samples_in(payload)
            verdicts = self._stream.push(payload)
        except StreamFrameError as exc:
            raise PayloadError(str(exc)) from exc
        return Outcome(results=self._results(verdicts))

    def end(self, reason: EndReason) -> list[BaseModel]:
        results = self._results(self._stream.finish())
        results.append(
            EndResult(
                **self._head.model_dump(),
                reason=reason,
                verdicts=self._blocks,
                anomalies=self._anomalies,
            )
        )
        return results

    def _results(self, verdicts: list[BlockVerdict]) -> list[BaseModel]:
        if not verdicts:
            return []
        self._blocks += len(verdicts)
        self._anomalies += sum(v.anomaly for v in verdicts)
        blocks, alarms = blocks_messages(self._head, verdicts, self._band_hz)
        return [blocks, *alarms]

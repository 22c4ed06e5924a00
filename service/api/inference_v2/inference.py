"""A served model as the Open Inference Protocol sees it: its input and output tensors, and one
inference: the request's tensors go to the pipeline of the model's input type (audio clip or
sensor series) and its verdicts come back as output tensors. Blocking: runs in the scoring pool.

Audio models take `audio` (BYTES, one WAV or FLAC file) or `samples` (FP32 mono samples with a
`sample_rate` parameter); windows models take `samples` (FP32 [steps, channels]). Both answer
`score`, `threshold`, `ratio` and `anomaly`, then per block (audio: the clip's blocks against the
block threshold) or per step (windows: `score` and `ratio` are the highest step's, `anomaly`
whether any step is anomalous)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf

from service.api.inference_v2.schemas import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    TensorMetadata,
)
from service.api.inference_v2.tensors import (
    InputTensor,
    InvalidRequestError,
    OutputTensor,
    encode_response,
    parse_request,
)
from service.audio.decode import AudioDecodeError, DecodeLimits
from service.events.capture import EventSink
from service.features.logmel import AudioTooShortError
from service.metrics import Metrics
from service.pipelines.audio_clip import score_clip
from service.pipelines.sensor_series import score_series
from service.registry import ServedModel
from service.scoring.decision import NonFiniteError
from service.scoring.detectors import AudioDetector, WindowsDetector
from service.scoring.windows import SeriesTooShortError
from service.sensor_input import SensorInputError

AUDIO_INPUT = "audio"
SAMPLES_INPUT = "samples"
SAMPLE_RATE = "sample_rate"
STATION = "station"
# Channels named per anomalous run by the series pipeline; runs are not an output here.
_TOP_CHANNELS = 1
_VERDICT_OUTPUTS: list[tuple[str, Datatype]] = [
    ("score", "FP64"),
    ("threshold", "FP64"),
    ("ratio", "FP64"),
    ("anomaly", "BOOL"),
]
_BLOCK_OUTPUTS: list[tuple[str, Datatype]] = [("block_scores", "FP64"), ("block_anomalies", "BOOL")]
_STEP_OUTPUTS: list[tuple[str, Datatype]] = [("step_scores", "FP64"), ("step_anomalies", "BOOL")]
_UNSCORABLE = (
    AudioDecodeError,
    AudioTooShortError,
    NonFiniteError,
    SensorInputError,
    SeriesTooShortError,
)


@dataclass(frozen=True)
class Encoded:
    body: bytes
    headers: dict[str, str]


def model_metadata(model: ServedModel, versions: list[str]) -> ModelMetadata:
    if model.windows is not None:
        channels = len(model.windows.scorer.channel_names)
        inputs = [TensorMetadata(name=SAMPLES_INPUT, datatype="FP32", shape=[-1, channels])]
        per_item = _STEP_OUTPUTS
    else:
        inputs = [
            TensorMetadata(name=AUDIO_INPUT, datatype="BYTES", shape=[1]),
            TensorMetadata(name=SAMPLES_INPUT, datatype="FP32", shape=[-1]),
        ]
        per_item = _BLOCK_OUTPUTS
    outputs = [TensorMetadata(name=n, datatype=t, shape=[1]) for n, t in _VERDICT_OUTPUTS]
    outputs += [TensorMetadata(name=n, datatype=t, shape=[-1]) for n, t in per_item]
    return ModelMetadata(name=model.name, versions=versions, inputs=inputs, outputs=outputs)


def infer(
    model: ServedModel,
    body: bytes,
    header_length: str | None,
    *,
    limits: DecodeLimits,
    max_sensor_steps: int,
    metrics: Metrics,
    events: EventSink | None = None,
) -> Encoded:
    """The encoded response to one inference request. Raises InvalidRequestError (HTTP 400)."""
    request, inputs = parse_request(body, header_length)
    station = request.parameters.get(STATION)
    if station is not None and (not isinstance(station, str) or len(station) > 64):
        raise InvalidRequestError("the station parameter must be a string of at most 64 characters")
    try:
        if model.audio is not None:
            outputs = _infer_audio(model.audio, request, inputs, limits, metrics, station, events)
        else:
            assert model.windows is not None
            outputs = _infer_windows(
                model.windows, inputs, max_sensor_steps, metrics, station, events
            )
    except _UNSCORABLE as exc:
        raise InvalidRequestError(str(exc)) from exc
    selected, binary = _selected(outputs, request)
    response = InferenceResponse(
        model_name=model.name, model_version=model.version, id=request.id, outputs=[]
    )
    return Encoded(*encode_response(response, selected, binary))


def _only_input(inputs: dict[str, InputTensor], accepted: tuple[str, ...]) -> InputTensor:
    if len(inputs) != 1 or next(iter(inputs)) not in accepted:
        raise InvalidRequestError(
            f"expected exactly one input, named {' or '.join(map(repr, accepted))}; "
            f"got {sorted(inputs)}"
        )
    return next(iter(inputs.values()))


def _infer_audio(
    detector: AudioDetector,
    request: InferenceRequest,
    inputs: dict[str, InputTensor],
    limits: DecodeLimits,
    metrics: Metrics,
    station: str | None,
    events: EventSink | None,
) -> list[OutputTensor]:
    given = _only_input(inputs, (AUDIO_INPUT, SAMPLES_INPUT))
    if given.name == AUDIO_INPUT:
        if given.elements is None or len(given.elements) != 1:
            raise InvalidRequestError(
                f"input {AUDIO_INPUT!r} is BYTES holding one WAV or FLAC file, shape [1]"
            )
        data = given.elements[0]
    else:
        rate = given.parameters.get(SAMPLE_RATE, request.parameters.get(SAMPLE_RATE))
        data = _as_wav(given, rate, limits)
    clip = score_clip(
        detector,
        data,
        limits=limits,
        metrics=metrics,
        station=station,
        events=events,
        event_source="v2",
    )
    return [
        *_verdict(clip.score, detector.clip.threshold, clip.verdict.ratio, clip.verdict.anomaly),
        OutputTensor("block_scores", "FP64", np.array([b.score for b in clip.blocks])),
        OutputTensor("block_anomalies", "BOOL", np.array([b.anomaly for b in clip.blocks])),
    ]


def _as_wav(given: InputTensor, rate: Any, limits: DecodeLimits) -> bytes:
    """Samples as the float WAV file the clip pipeline decodes back to the same float32
    samples, so they meet the same checks (rate, length, amplitude) as an uploaded file."""
    samples = given.numbers
    if samples is None or samples.ndim not in (1, 2) or samples.shape[:-1] not in ((), (1,)):
        raise InvalidRequestError(
            f"input {SAMPLES_INPUT!r} of an audio model is FP32 mono samples, shape [n] or [1, n]"
        )
    if type(rate) is not int or not limits.min_sample_rate <= rate <= limits.max_sample_rate:
        raise InvalidRequestError(
            f"input {SAMPLES_INPUT!r} needs the parameter {SAMPLE_RATE!r}: an integer from "
            f"{limits.min_sample_rate} to {limits.max_sample_rate} Hz, got {rate!r}"
        )
    buffer = io.BytesIO()
    sf.write(buffer, samples.ravel().astype(np.float32), rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def _infer_windows(
    detector: WindowsDetector,
    inputs: dict[str, InputTensor],
    max_sensor_steps: int,
    metrics: Metrics,
    station: str | None,
    events: EventSink | None,
) -> list[OutputTensor]:
    given = _only_input(inputs, (SAMPLES_INPUT,))
    samples = given.numbers
    if samples is not None and samples.ndim == 3 and samples.shape[0] == 1:
        samples = samples[0]
    if samples is None or samples.ndim != 2:
        raise InvalidRequestError(
            f"input {SAMPLES_INPUT!r} of a windows model is FP32 [steps, channels]"
        )
    # The rows as the JSON body the series pipeline parses: one path from readings to verdicts.
    body = json.dumps(samples.tolist()).encode()
    verdicts = score_series(
        detector,
        body,
        max_steps=max_sensor_steps,
        top_channels=_TOP_CHANNELS,
        metrics=metrics,
        station=station,
        events=events,
        event_source="v2",
    )
    return [
        *_verdict(
            float(verdicts.scores.max()),
            detector.step.threshold,
            float(verdicts.ratios.max()),
            bool(verdicts.anomalies.any()),
        ),
        OutputTensor("step_scores", "FP64", verdicts.scores),
        OutputTensor("step_anomalies", "BOOL", verdicts.anomalies),
    ]


def _verdict(score: float, threshold: float, ratio: float, anomaly: bool) -> list[OutputTensor]:
    values = (score, threshold, ratio, anomaly)
    return [
        OutputTensor(name, datatype, np.array([value]))
        for (name, datatype), value in zip(_VERDICT_OUTPUTS, values, strict=True)
    ]


def _selected(
    outputs: list[OutputTensor], request: InferenceRequest
) -> tuple[list[OutputTensor], set[str]]:
    """The outputs asked for (all when none are named), and those to send as binary."""
    all_binary = request.parameters.get("binary_data_output") is True
    if request.outputs is None:
        return outputs, {o.name for o in outputs} if all_binary else set()
    by_name = {output.name: output for output in outputs}
    unknown = [wanted.name for wanted in request.outputs if wanted.name not in by_name]
    if unknown:
        raise InvalidRequestError(f"no output named {unknown}; the outputs are {list(by_name)}")
    binary = {
        wanted.name
        for wanted in request.outputs
        if wanted.parameters.get("binary_data", all_binary) is True
    }
    return [by_name[wanted.name] for wanted in request.outputs], binary

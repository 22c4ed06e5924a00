"""Scoring a sensor series: `POST /v1/models/{name}/windows` with a JSON array of samples by
channels; per-step scores and verdicts, and the channels behind each anomalous run. The sensor
series pipeline does the work."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from service.api.deps import ModelDep, RuntimeDep, require_api_key
from service.api.schemas import AnomalyRunOut, ErrorResponse, WindowsVerdict
from service.pipelines.sensor_series import score_series
from service.scoring.decision import NonFiniteError
from service.scoring.windows import SeriesTooShortError
from service.sensor_input import SensorInputError

JSON_TYPES = ("application/json",)
DEFAULT_TOP_CHANNELS = 3

_SAMPLES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "array", "items": {"type": "number"}},
    "description": "one row per step, one number per channel in the model's channel order",
}
_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the samples as a JSON array of rows, or an object whose 'samples' holds "
        "them and whose optional 'channels' names the columns (in any order)",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _SAMPLES_SCHEMA,
                        {
                            "type": "object",
                            "properties": {
                                "samples": _SAMPLES_SCHEMA,
                                "channels": {"type": "array", "items": {"type": "string"}},
                            },
                            "required": ["samples"],
                        },
                    ]
                }
            }
        },
    }
}


router = APIRouter(
    prefix="/v1/models",
    tags=["sensor windows"],
    dependencies=[Depends(require_api_key)],
    responses={401: {"model": ErrorResponse, "description": "missing or wrong API key"}},
)


@router.post(
    "/{name}/windows",
    summary="Score a sensor series: per-step scores and verdicts, and the channels behind "
    "each anomalous run",
    openapi_extra=_REQUEST_BODY,
    responses={
        400: {"model": ErrorResponse, "description": "the model does not score sensor series"},
        404: {"model": ErrorResponse, "description": "no such model"},
        413: {"model": ErrorResponse, "description": "body over AUSCULT_MAX_BODY_BYTES"},
        415: {"model": ErrorResponse, "description": "not a JSON body"},
        422: {"model": ErrorResponse, "description": "not a usable series: says what is wrong"},
        503: {"model": ErrorResponse, "description": "scoring pool full; see Retry-After"},
    },
)
async def score_windows(
    request: Request,
    model: ModelDep,
    runtime: RuntimeDep,
    station: Annotated[
        str | None, Query(max_length=64, description="where the readings come from, for metrics")
    ] = None,
    top_channels: Annotated[
        int, Query(ge=1, le=64, description="channels named per anomalous run")
    ] = DEFAULT_TOP_CHANNELS,
) -> WindowsVerdict:
    detector = model.windows
    if detector is None:
        raise HTTPException(
            status_code=400,
            detail=f"model {model.name!r} is a {model.kind} model; it does not score sensor series",
        )
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise HTTPException(
            status_code=415,
            detail=f"unsupported content type {media_type or '(none)'!r}: send the samples as "
            "application/json",
        )
    body = await request.body()
    try:
        verdicts = await runtime.pool.run(
            score_series,
            detector,
            body,
            max_steps=runtime.settings.max_sensor_steps,
            top_channels=top_channels,
            metrics=runtime.metrics,
            station=station,
            events=runtime.events,
        )
    except (SensorInputError, SeriesTooShortError, NonFiniteError) as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc

    manifest = detector.scorer.manifest
    return WindowsVerdict(
        model=model.name,
        version=model.version,
        station=station,
        steps=verdicts.n_steps,
        channels=list(detector.scorer.channel_names),
        window=manifest.window,
        stride=manifest.stride,
        operating_point=detector.operating_point,
        threshold=detector.step.threshold,
        anomaly=bool(verdicts.anomalies.any()),
        anomalous_steps=int(verdicts.anomalies.sum()),
        max_ratio=float(verdicts.ratios.max()),
        scores=verdicts.scores.tolist(),
        anomalies=verdicts.anomalies.tolist(),
        runs=AnomalyRunOut.from_runs(verdicts.runs, detector.step.threshold),
    )

"""Scoring a sensor series: `POST /v1/models/{name}/windows` with a JSON array of samples by
channels; per-step scores and verdicts, and the channels behind each anomalous run."""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from service.api.deps import ModelDep, RuntimeDep, require_api_key
from service.api.schemas import ErrorResponse
from service.metrics import Metrics
from service.scoring.decision import Decision
from service.scoring.windows import (
    AnomalyRun,
    SeriesTooShortError,
    StepScores,
    WindowsScorer,
    anomaly_runs,
)

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


class ChannelShareOut(BaseModel):
    name: str
    share: float = Field(description="the channel's share of the run's summed squared error")


class AnomalyRunOut(BaseModel):
    start: int = Field(description="first anomalous step (0 = the first row sent)")
    end: int = Field(description="the step after the last anomalous one")
    peak_step: int
    peak_score: float
    peak_ratio: float = Field(description="peak_score / threshold")
    channels: list[ChannelShareOut] = Field(description="the channels contributing most")


class WindowsVerdict(BaseModel):
    model: str
    version: str
    station: str | None
    steps: int
    channels: list[str] = Field(description="the model's channels, in the order scored")
    window: int
    stride: int
    threshold: float = Field(description="the per-step threshold (the manifest's step_decision)")
    anomaly: bool = Field(description="whether any step is anomalous")
    anomalous_steps: int
    max_ratio: float = Field(description="the largest score / threshold")
    scores: list[float] = Field(description="one score per step")
    anomalies: list[bool] = Field(description="one verdict per step")
    runs: list[AnomalyRunOut] = Field(description="runs of consecutive anomalous steps")


router = APIRouter(
    prefix="/v1/models",
    tags=["sensor windows"],
    dependencies=[Depends(require_api_key)],
    responses={401: {"model": ErrorResponse, "description": "missing or wrong API key"}},
)


def samples_from_json(data: Any, channel_names: tuple[str, ...]) -> np.ndarray:
    """Rows [steps, channels] in the model's channel order from a parsed request body."""
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"samples", "channels"})
        if unknown or "samples" not in data:
            raise ValueError(
                f"expected an object with 'samples' (and optionally 'channels'), got keys "
                f"{sorted(data)}"
            )
        samples = np.asarray(_numbers(data["samples"]))
        names = data.get("channels")
        if names is not None:
            return _reorder(samples, names, channel_names)
        return samples
    return np.asarray(_numbers(data))


def _numbers(rows: Any) -> Any:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise ValueError("samples must be a JSON array of rows, each an array of numbers")
    if any(isinstance(value, bool) or value is None for row in rows for value in row):
        raise ValueError("samples must hold only numbers (no true, false or null)")
    lengths = sorted({len(row) for row in rows})
    if len(lengths) > 1:
        raise ValueError(f"every row must hold the same number of values, got lengths {lengths}")
    return rows


def _reorder(samples: np.ndarray, names: Any, expected: tuple[str, ...]) -> np.ndarray:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("'channels' must be an array of channel names")
    missing = [n for n in expected if n not in names]
    unknown = [n for n in names if n not in expected]
    if missing or unknown or len(names) != len(expected):
        raise ValueError(
            f"'channels' must name each of the model's channels once: missing {missing}, "
            f"unknown {unknown} (the model's channels: {list(expected)})"
        )
    if samples.ndim != 2 or samples.shape[1] != len(names):
        raise ValueError(f"each row must hold {len(names)} numbers, one per named channel")
    return samples[:, [names.index(n) for n in expected]]


def score_body(scorer: WindowsScorer, body: bytes, metrics: Metrics) -> StepScores:
    """Parse and score a request body (blocking: it runs in the scoring pool). Raises
    ValueError, with what was wrong, for a body that is not a usable series."""
    with metrics.time_stage("features"):
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"the body is not valid JSON: {exc}") from exc
        samples = samples_from_json(data, scorer.channel_names)
        scorer.standardise(samples)  # check now, so a bad series fails before the model runs
    with metrics.time_stage("model"):
        return scorer.score(samples)


def runs_out(runs: list[AnomalyRun], threshold: float) -> list[AnomalyRunOut]:
    return [
        AnomalyRunOut(
            start=run.start,
            end=run.end,
            peak_step=run.peak_step,
            peak_score=run.peak_score,
            peak_ratio=run.peak_score / threshold,
            channels=[ChannelShareOut(name=c.name, share=c.share) for c in run.channels],
        )
        for run in runs
    ]


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
    if model.kind != "windows":
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
    scorer = WindowsScorer(model.bundle)
    body = await request.body()
    try:
        steps = await runtime.pool.run(score_body, scorer, body, runtime.metrics)
    except (ValueError, SeriesTooShortError) as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc

    manifest = scorer.manifest
    decision = Decision(manifest.step_decision.threshold)
    anomalies = decision.anomalies(steps.scores)
    ratios = steps.scores / decision.threshold
    runtime.metrics.record_verdicts(
        model.name, station, "windows", anomalies.tolist(), ratios.tolist()
    )
    runs = anomaly_runs(steps, anomalies, scorer.channel_names, top_channels)
    return WindowsVerdict(
        model=model.name,
        version=model.version,
        station=station,
        steps=steps.n_steps,
        channels=list(scorer.channel_names),
        window=manifest.window,
        stride=manifest.stride,
        threshold=decision.threshold,
        anomaly=bool(anomalies.any()),
        anomalous_steps=int(anomalies.sum()),
        max_ratio=float(ratios.max()),
        scores=steps.scores.tolist(),
        anomalies=anomalies.tolist(),
        runs=runs_out(runs, decision.threshold),
    )

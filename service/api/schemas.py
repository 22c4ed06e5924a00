"""Response models of the HTTP API (the OpenAPI schema at /docs is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, Field

from service.scoring import detectors
from service.scoring.windows import AnomalyRun


class ErrorResponse(BaseModel):
    detail: str = Field(description="what was wrong, in words")


class Alive(BaseModel):
    status: Literal["alive"] = "alive"


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    reason: str | None = Field(None, description="why the service is not ready")
    models: int = Field(description="models being served")


class ModelSummary(BaseModel):
    name: str
    version: str
    kind: Literal["audio", "windows"]
    bundle: str = Field(description="the bundle's folder name inside the models folder")
    created_at: datetime
    loaded_at: datetime
    description: str
    threshold: float = Field(
        description="the applied operating point's clip threshold (audio) or step threshold "
        "(windows)"
    )
    operating_point: str = Field(
        description="the operating point whose thresholds the verdicts use "
        "(AUSCULT_OPERATING_POINT, AUSCULT_MODEL_OPERATING_POINTS)",
    )


class ModelDetail(ModelSummary):
    status: Literal["serving"] = "serving"
    manifest: dict[str, Any] = Field(description="the bundle's whole manifest.json")


class RefusedBundleOut(BaseModel):
    bundle: str = Field(description="the refused bundle's folder name")
    error: str
    at: datetime


class ModelList(BaseModel):
    models: list[ModelSummary]
    refused: list[RefusedBundleOut] = Field(
        description="bundles that failed to load; retried when their files change"
    )


class WorkerModels(BaseModel):
    pid: int = Field(description="the worker process")
    reloaded: bool = Field(description="whether this worker has acted on this reload")
    models: dict[str, str] = Field(description="model name -> version this worker serves")


class ReloadReport(BaseModel):
    loaded: list[ModelSummary] = Field(description="bundles newly loaded by this reload")
    refused: list[RefusedBundleOut] = Field(description="bundles refused by this reload")
    removed: list[str] = Field(description="bundle folders that disappeared")
    models: list[ModelSummary] = Field(description="what is served after the reload")
    workers: list[WorkerModels] = Field(
        description="what each live worker process of the server serves after the reload"
    )
    all_workers_reloaded: bool = Field(
        description="false when a worker had not reloaded within AUSCULT_RELOAD_WAIT_SECONDS"
    )


class BlockVerdict(BaseModel):
    index: int
    start_s: float
    end_s: float
    score: float
    ratio: float = Field(description="score / block threshold")
    anomaly: bool = Field(description="verdict with the block threshold")

    @classmethod
    def of(cls, verdict: detectors.BlockVerdict, **extra: Any) -> Self:
        """The answer's form of a detector's block verdict (`extra`: a subclass's fields)."""
        return cls(
            index=verdict.index,
            start_s=verdict.start_s,
            end_s=verdict.end_s,
            score=verdict.score,
            ratio=verdict.ratio,
            anomaly=verdict.anomaly,
            **extra,
        )


class WorstBlock(BlockVerdict):
    band_error: list[float] = Field(
        description="reconstruction error per mel band, lowest band first"
    )
    band_hz: list[float] = Field(description="centre frequency of each mel band in Hz")


class ClipVerdict(BaseModel):
    model: str
    version: str
    station: str | None
    duration_s: float = Field(description="clip length as decoded")
    sample_rate: int = Field(description="the clip's own sample rate")
    channels: int = Field(description="channels in the file (averaged to mono)")
    model_sample_rate: int
    operating_point: str = Field(description="the operating point whose thresholds are applied")
    score: float = Field(description="mean of the block scores")
    threshold: float = Field(description="the clip threshold of the operating point")
    ratio: float = Field(description="score / threshold")
    anomaly: bool
    block_threshold: float = Field(description="the per-block threshold of the operating point")
    blocks: list[BlockVerdict] | None = Field(
        description="every block's verdict; null when the request asked for blocks=false"
    )
    worst_block: WorstBlock


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

    @classmethod
    def from_runs(cls, runs: list[AnomalyRun], threshold: float) -> list[AnomalyRunOut]:
        return [
            cls(
                start=run.start,
                end=run.end,
                peak_step=run.peak_step,
                peak_score=run.peak_score,
                peak_ratio=run.peak_score / threshold,
                channels=[ChannelShareOut(name=c.name, share=c.share) for c in run.channels],
            )
            for run in runs
        ]


class WindowsVerdict(BaseModel):
    model: str
    version: str
    station: str | None
    steps: int
    channels: list[str] = Field(description="the model's channels, in the order scored")
    window: int
    stride: int
    operating_point: str = Field(description="the operating point whose threshold is applied")
    threshold: float = Field(description="the per-step threshold of the operating point")
    anomaly: bool = Field(description="whether any step is anomalous")
    anomalous_steps: int
    max_ratio: float = Field(description="the largest score / threshold")
    scores: list[float] = Field(description="one score per step")
    anomalies: list[bool] = Field(description="one verdict per step")
    runs: list[AnomalyRunOut] = Field(description="runs of consecutive anomalous steps")

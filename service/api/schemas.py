"""Response models of the HTTP API (the OpenAPI schema at /docs is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


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
        description="the decision threshold: clip_decision (audio) or step_decision (windows)"
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


class ReloadReport(BaseModel):
    loaded: list[ModelSummary] = Field(description="bundles newly loaded by this reload")
    refused: list[RefusedBundleOut] = Field(description="bundles refused by this reload")
    removed: list[str] = Field(description="bundle folders that disappeared")
    models: list[ModelSummary] = Field(description="what is served after the reload")


class BlockVerdict(BaseModel):
    index: int
    start_s: float
    end_s: float
    score: float
    ratio: float = Field(description="score / block threshold")
    anomaly: bool = Field(description="verdict with the block threshold")


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
    score: float = Field(description="mean of the block scores")
    threshold: float = Field(description="the clip threshold (clip_decision)")
    ratio: float = Field(description="score / threshold")
    anomaly: bool
    block_threshold: float = Field(description="the per-block threshold (block_decision)")
    blocks: list[BlockVerdict]
    worst_block: WorstBlock

"""The JSON text messages of the audio stream protocol (`WS /v1/models/{name}/stream`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.stream_scoring import Encoding


class StartMessage(BaseModel):
    """The client's first message."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["start"]
    sample_rate: int = Field(ge=1000, le=384000, description="samples per second per channel")
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


class ErrorMessage(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str

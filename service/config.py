"""The service's settings: every limit and location, read from `AUSCULT_*` environment variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_API_KEY_LENGTH = 16


def _split_list(value: object) -> object:
    """Accept a comma-separated string or a JSON list for list-valued variables."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """What one service instance serves and how much it accepts; defaults suit one small host."""

    model_config = SettingsConfigDict(
        env_prefix="AUSCULT_", env_ignore_empty=True, extra="ignore", frozen=True
    )

    models_dir: Path = Field(default=Path("models"), description="folder of model bundles to serve")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="accepted API keys, comma-separated; empty turns authentication off",
    )
    stations: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="station names counted under their own label in metrics; others are 'other'",
    )
    worker_threads: Annotated[int, Field(ge=1, le=64)] = Field(
        default=2, description="threads that decode, extract features and run models"
    )
    pool_queue_limit: Annotated[int, Field(ge=0)] = Field(
        default=8, description="jobs that may wait for a worker thread before requests get 503"
    )
    onnx_threads: Annotated[int, Field(ge=1, le=64)] = Field(
        default=1, description="ONNX Runtime intra-op threads per model"
    )
    max_body_bytes: Annotated[int, Field(gt=0)] = Field(
        default=32 * 1024 * 1024, description="largest request body accepted (413 above)"
    )
    max_clip_seconds: Annotated[float, Field(gt=0)] = Field(
        default=600.0, description="longest clip accepted for scoring (422 above)"
    )
    ws_max_connections: Annotated[int, Field(ge=1)] = Field(
        default=64, description="concurrent WebSocket streams per process"
    )
    ws_max_stream_seconds: Annotated[float, Field(gt=0)] = Field(
        default=3600.0, description="most seconds of audio one stream may carry"
    )
    ws_buffer_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=1024 * 1024,
        description="per-connection buffer; a larger audio frame closes with 1009",
    )
    ws_idle_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=60.0, description="a stream that sends nothing for this long is closed"
    )
    ws_ping_interval_seconds: Annotated[float, Field(gt=0)] = Field(
        default=20.0, description="WebSocket keepalive ping interval"
    )
    ws_ping_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=20.0, description="a ping unanswered for this long closes the connection"
    )
    reload_poll_seconds: Annotated[float, Field(ge=0)] = Field(
        default=10.0,
        description="how often the models folder is checked for new bundles; 0 turns it off",
    )
    shutdown_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30.0, description="how long shutdown waits for open requests before cancelling them"
    )
    drain_seconds: Annotated[float, Field(ge=0)] = Field(
        default=0.0,
        description="on SIGTERM, answer /readyz 503 and keep serving this long before stopping",
    )

    @field_validator("api_keys", "stations", mode="before")
    @classmethod
    def _lists_from_text(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("api_keys")
    @classmethod
    def _keys_long_enough(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for position, key in enumerate(keys, start=1):
            if len(key.get_secret_value()) < MIN_API_KEY_LENGTH:
                raise ValueError(
                    f"API key {position} has {len(key.get_secret_value())} characters; "
                    f"keys need at least {MIN_API_KEY_LENGTH}"
                )
        return keys

    @field_validator("stations")
    @classmethod
    def _stations_are_labels(cls, stations: list[str]) -> list[str]:
        reserved = {"other", "unknown"} & set(stations)
        if reserved:
            raise ValueError(f"station names {sorted(reserved)} are reserved for metrics")
        return stations

"""The service's settings: every limit and location, read from `AUSCULT_*` environment variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.logging_setup import LogFormat

MIN_API_KEY_LENGTH = 16
# Defaults shared with the functions that take these limits as arguments (decode, resample,
# sensor input), so a caller without settings gets the same bounds as the service.
DEFAULT_MAX_CLIP_SECONDS = 600.0
DEFAULT_MIN_SAMPLE_RATE = 8_000
DEFAULT_MAX_SAMPLE_RATE = 192_000
# Every multiple of 10 Hz in the default range reduces to factors of at most 19,199 against
# 16, 22.05, 44.1 or 48 kHz (191,990 Hz to 22.05 kHz is the worst): a filter of 400 K taps.
DEFAULT_MAX_RESAMPLE_FACTOR = 20_000
# The default clip limit of mono audio at 48 kHz: about 115 MB as float32.
DEFAULT_MAX_DECODED_SAMPLES = 28_800_000
DEFAULT_MAX_SENSOR_STEPS = 100_000


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
        default=2,
        description="threads that decode, extract features and run models, per process; "
        "`auscult serve` gives each worker its share of the usable CPUs when this is unset",
    )
    worker_threads_nice: Annotated[int, Field(ge=0, le=19)] = Field(
        default=10,
        description="how much lower the CPU priority of the threads that decode, score and "
        "write evidence (worker, stream batch, MQTT and event writer threads) is than the "
        "event loop's, as a nice increment (Linux): under a scoring overload the loop still "
        "refuses requests and answers health checks at once. 0 keeps them at its priority",
    )
    gc_freeze: bool = Field(
        default=True,
        description="once the models are loaded (and after each reload), move what the "
        "process holds out of the garbage collector's full collections, which otherwise "
        "stop the event loop for about 0.1 s now and then under load",
    )
    pool_queue_limit: Annotated[int, Field(ge=0)] = Field(
        default=256,
        description="most jobs that may wait for a worker thread, whatever their expected wait: "
        "the last guard (503) behind AUSCULT_MAX_QUEUE_WAIT_SECONDS, bounding memory",
    )
    max_queue_wait_seconds: Annotated[float, Field(ge=0)] = Field(
        default=1.0,
        description="a scoring request whose expected wait for a worker thread (moving average "
        "of service time x work ahead / threads) is over this is refused with 503 and "
        "Retry-After from its head, before its body is read",
    )
    onnx_threads: Annotated[int, Field(ge=1, le=64)] = Field(
        default=1, description="ONNX Runtime intra-op threads per model"
    )
    max_body_bytes: Annotated[int, Field(gt=0)] = Field(
        default=32 * 1024 * 1024, description="largest request body accepted (413 above)"
    )
    max_clip_seconds: Annotated[float, Field(gt=0)] = Field(
        default=DEFAULT_MAX_CLIP_SECONDS,
        description="longest clip accepted for scoring (422 above)",
    )
    min_sample_rate: Annotated[int, Field(ge=1)] = Field(
        default=DEFAULT_MIN_SAMPLE_RATE,
        description="lowest sample rate accepted from an audio header or stream (422 below)",
    )
    max_sample_rate: Annotated[int, Field(ge=1)] = Field(
        default=DEFAULT_MAX_SAMPLE_RATE,
        description="highest sample rate accepted from an audio header or stream (422 above); "
        "it bounds the cost of designing a resampling filter",
    )
    max_resample_factor: Annotated[int, Field(ge=1)] = Field(
        default=DEFAULT_MAX_RESAMPLE_FACTOR,
        description="largest factor of a sample rate's ratio to the model's rate, reduced by "
        "their greatest common divisor (422, or bad_start on streams, above): the resampling "
        "filter has 20 taps per unit. The default admits every common rate and every "
        "multiple of 10 Hz to models at 16, 22.05, 44.1 or 48 kHz and refuses odd rates such "
        "as 191,999 Hz, whose filter would have millions of taps",
    )
    max_decoded_samples: Annotated[int, Field(gt=0)] = Field(
        default=DEFAULT_MAX_DECODED_SAMPLES,
        description="most samples (frames x channels) one clip may decode to, checked against "
        "the header before decoding (422 above); the default is 600 s of mono audio at 48 kHz",
    )
    max_sensor_steps: Annotated[int, Field(gt=0)] = Field(
        default=DEFAULT_MAX_SENSOR_STEPS,
        description="most steps (rows) in one sensor series body or stream frame (422 above)",
    )
    operating_point: str | None = Field(
        default=None,
        description="operating point applied to every model that has it: a point's name or a "
        "rule ('gamma', 'false_alarm_rate', 'percentile'); others use their bundle's default",
    )
    model_operating_points: dict[str, str] = Field(
        default_factory=dict,
        description='per-model operating point as JSON, e.g. {"uav-propeller": "gamma"}; it '
        "overrides AUSCULT_OPERATING_POINT, and a bundle lacking it is refused",
    )
    ws_max_connections: Annotated[int, Field(ge=1)] = Field(
        default=512,
        description="concurrent WebSocket streams per process. The default is about 1.5 times "
        "what one core holds at the measured cost of a 16 kHz stream (about 3 ms of CPU per "
        "second of audio: benchmarks/streams_capacity.py), so that an uneven spread of "
        "connections over the workers is not refused while the CPUs could serve it",
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
    memory_trim_seconds: Annotated[float, Field(ge=0)] = Field(
        default=2.0,
        description="how often each worker hands the free pages of its heap back to the system "
        "(glibc's malloc_trim), so that its RSS returns after a burst of large requests; "
        "0 turns it off",
    )
    reload_poll_seconds: Annotated[float, Field(ge=0)] = Field(
        default=10.0,
        description="how often the models folder is checked for new bundles; 0 turns it off",
    )
    worker_sync_dir: Path | None = Field(
        default=None,
        description="folder the worker processes of one server share so that a reload reaches "
        "every one; `auscult serve --workers N` makes one when unset",
    )
    worker_sync_poll_seconds: Annotated[float, Field(gt=0, le=10)] = Field(
        default=0.25,
        description="how often each worker checks that folder for a reload asked of another",
    )
    reload_wait_seconds: Annotated[float, Field(ge=0)] = Field(
        default=10.0,
        description="longest a reload request waits for every worker to serve what it loaded",
    )
    shutdown_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30.0, description="how long shutdown waits for open requests before cancelling them"
    )
    drain_seconds: Annotated[float, Field(ge=0)] = Field(
        default=5.0,
        description="on SIGTERM, answer /readyz 503 and keep serving this long before stopping",
    )
    header_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="a connection that has not sent a whole request head this long is closed",
    )
    body_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=60.0,
        description="a request body not received in full this long after the head gets 408",
    )
    log_format: LogFormat = Field(
        default="text",
        description="'text' (uvicorn's lines) or 'json': one JSON object per line with time, "
        "level, message and the request's id (X-Request-ID), route, status, duration, model, "
        "version and station where known; `auscult serve --log-format` overrides it",
    )

    state_dir: Path = Field(
        default=Path("state"),
        description="folder of what the service keeps between runs: the event database (by "
        "default) and the evidence of events (audio as FLAC, sensor windows as .npy)",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the event database; unset: a SQLite file "
        "events.db under AUSCULT_STATE_DIR. Several servers or replicas: "
        "postgresql+psycopg://user:password@host/db",
    )
    events_enabled: bool = Field(
        default=True, description="keep an event for every verdict (off: nothing is stored)"
    )
    event_queue_size: Annotated[int, Field(ge=1)] = Field(
        default=10_000,
        description="events waiting to be written, per process; when full, new events are "
        "dropped and counted (auscult_events_dropped_total), never delaying a request",
    )
    event_normal_audio_fraction: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.05,
        description="share of normal clips whose audio is kept as evidence (every alarmed "
        "clip's audio is kept)",
    )
    evidence_quota_bytes: Annotated[int, Field(ge=0)] = Field(
        default=2 * 1024**3,
        description="disk budget of the evidence folder; over it, the oldest unlabelled normal "
        "audio goes first, then the oldest unlabelled alarms; labelled evidence is never evicted",
    )

    @model_validator(mode="after")
    def _sample_rate_range(self) -> Settings:
        if self.min_sample_rate > self.max_sample_rate:
            raise ValueError(
                f"min_sample_rate {self.min_sample_rate} is above max_sample_rate "
                f"{self.max_sample_rate}"
            )
        return self

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

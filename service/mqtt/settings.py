"""The bridge's own settings, read from `AUSCULT_MQTT_*` environment variables; what it serves
and how it scores come from the service's `Settings` (`AUSCULT_*`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_WILDCARDS = frozenset("+#")


class MqttSettings(BaseSettings):
    """Broker, topics and bounds of one bridge process."""

    model_config = SettingsConfigDict(
        env_prefix="AUSCULT_MQTT_", env_ignore_empty=True, extra="ignore", frozen=True
    )

    host: str = Field(default="127.0.0.1", description="the broker's host name or address")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(
        default=1883, description="the broker's TCP port"
    )
    client_id: str = Field(
        default="auscult-bridge",
        min_length=1,
        max_length=64,
        description="the MQTT client id; the broker keeps this id's session (subscriptions "
        "and QoS-1 messages not yet delivered) across reconnects, so give each bridge its own",
    )
    username: str | None = Field(default=None, description="broker user name, if it asks")
    password: SecretStr | None = Field(default=None, description="broker password, if it asks")
    keepalive_seconds: Annotated[int, Field(ge=5, le=3600)] = Field(
        default=30, description="MQTT keepalive: a silent broker is taken as gone after 1.5 x this"
    )
    input_prefix: str = Field(
        default="auscult/in",
        description="topics under it carry input: <prefix>/<model>/<device>/sensor (JSON), "
        ".../sensor/f32 (binary rows), .../audio and .../audio/<rate> (PCM s16le mono)",
    )
    output_prefix: str = Field(
        default="auscult/out",
        description="results go to <prefix>/<model>/<device>/verdicts and .../alarms, "
        "errors to <prefix>/errors",
    )
    audio_sample_rate: Annotated[int, Field(ge=1)] = Field(
        default=16_000,
        description="sample rate of audio topics that do not name one (.../audio)",
    )
    max_streams: Annotated[int, Field(ge=1)] = Field(
        default=256,
        description="open streams (one per model, device and input format) at once; input for "
        "another is refused on the error topic until one ends or idles out",
    )
    stream_backlog: Annotated[int, Field(ge=1)] = Field(
        default=64,
        description="input messages that may wait for scoring per stream; while one stream's "
        "are all waiting the bridge routes no more input (back-pressure), and new messages "
        "wait in the input backlog",
    )
    input_backlog: Annotated[int, Field(ge=1)] = Field(
        default=10_000,
        description="input messages received from the broker and not yet routed to a stream; "
        "beyond it they are dropped (counted as input_backlog_full): bounds memory when input "
        "outruns scoring for long",
    )
    backlog: Annotated[int, Field(ge=1)] = Field(
        default=10_000,
        description="result messages that may wait for the broker (while it is away, say); the "
        "oldest are dropped (counted) beyond it",
    )
    max_inflight: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=32, description="result messages published at once, each awaiting its PUBACK"
    )
    max_payload_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=1024 * 1024, description="largest input message accepted; larger ones are refused"
    )
    stream_idle_seconds: Annotated[float, Field(gt=0)] = Field(
        default=300.0,
        description="a stream that receives nothing this long is ended as if it had sent its "
        "end message: its last verdicts are published and its state freed",
    )
    drain_seconds: Annotated[float, Field(ge=0)] = Field(
        default=5.0,
        description="on SIGTERM or SIGINT, keep serving this long at most for input already "
        "received to be scored and its results acknowledged by the broker",
    )
    reconnect_min_seconds: Annotated[float, Field(gt=0)] = Field(
        default=0.5, description="first wait before reconnecting to a lost broker"
    )
    reconnect_max_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30.0, description="the wait doubles after each failed attempt up to this"
    )
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=0,
        description="port of the bridge's Prometheus /metrics endpoint; 0 turns it off",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="address the /metrics endpoint listens on"
    )

    @field_validator("input_prefix", "output_prefix")
    @classmethod
    def _plain_prefix(cls, prefix: str) -> str:
        prefix = prefix.strip("/")
        if not prefix or _WILDCARDS & set(prefix):
            raise ValueError(f"a topic prefix must be non-empty and hold no wildcard: {prefix!r}")
        return prefix

    @model_validator(mode="after")
    def _apart(self) -> MqttSettings:
        # The bridge subscribes to everything under the input prefix: its own results there
        # would come back to it as input.
        inputs, outputs = self.input_prefix + "/", self.output_prefix + "/"
        if inputs.startswith(outputs) or outputs.startswith(inputs):
            raise ValueError(
                f"input_prefix {self.input_prefix!r} and output_prefix {self.output_prefix!r} "
                "must not contain one another"
            )
        if self.reconnect_min_seconds > self.reconnect_max_seconds:
            raise ValueError("reconnect_min_seconds is above reconnect_max_seconds")
        return self

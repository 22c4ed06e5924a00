"""The topic layout: which stream an input topic feeds, and where its results go.

Input:  <input_prefix>/<model>/<device>/sensor         JSON sensor frames
        <input_prefix>/<model>/<device>/sensor/f32     binary sensor rows (see payloads.py)
        <input_prefix>/<model>/<device>/audio          PCM s16le mono (default rate)
        <input_prefix>/<model>/<device>/audio/<rate>   PCM s16le mono at <rate> Hz
Output: <output_prefix>/<model>/<device>/verdicts      every verdict, QoS 1
        <output_prefix>/<model>/<device>/alarms        anomalous runs only, QoS 1
        <output_prefix>/errors                         refused input, QoS 1
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

InputFormat = Literal["sensor", "sensor_f32", "audio"]
ResultKind = Literal["verdicts", "alarms"]

# A device name becomes a topic level and a metrics station: keep it plain.
_MAX_NAME = 64


class TopicError(ValueError):
    """A topic under the input prefix that does not follow the layout."""


@dataclass(frozen=True)
class StreamKey:
    """One stream: a model, a device and an input format (audio at one rate)."""

    model: str
    device: str
    format: InputFormat
    sample_rate: int | None = None  # audio only

    def with_device(self, device: str) -> StreamKey:
        """The same stream for another device (a JSON frame's `device` field)."""
        return replace(self, device=checked_name(device, "device"))


def checked_name(name: str, what: str) -> str:
    if not name or len(name) > _MAX_NAME or any(c in name for c in "/+#\0"):
        raise TopicError(
            f"{what} {name[:80]!r} must be 1 to {_MAX_NAME} characters without '/', '+', '#'"
        )
    return name


class TopicLayout:
    def __init__(self, input_prefix: str, output_prefix: str, default_rate: int) -> None:
        self.input_prefix = input_prefix
        self.output_prefix = output_prefix
        self._default_rate = default_rate

    @property
    def subscription(self) -> str:
        return f"{self.input_prefix}/#"

    @property
    def errors(self) -> str:
        return f"{self.output_prefix}/errors"

    def results(self, key: StreamKey, kind: ResultKind) -> str:
        return f"{self.output_prefix}/{key.model}/{key.device}/{kind}"

    def parse(self, topic: str) -> StreamKey:
        """The stream an input topic feeds; TopicError when it does not follow the layout."""
        prefix = self.input_prefix + "/"
        if not topic.startswith(prefix):
            raise TopicError(f"the topic {topic!r} is not under {self.input_prefix!r}")
        levels = topic[len(prefix) :].split("/")
        if len(levels) < 3:
            raise TopicError(
                f"the topic {topic!r} must be {self.input_prefix}/<model>/<device>/"
                "sensor|sensor/f32|audio|audio/<rate>"
            )
        model = checked_name(levels[0], "model")
        device = checked_name(levels[1], "device")
        rest = levels[2:]
        if rest == ["sensor"]:
            return StreamKey(model, device, "sensor")
        if rest == ["sensor", "f32"]:
            return StreamKey(model, device, "sensor_f32")
        if rest == ["audio"]:
            return StreamKey(model, device, "audio", self._default_rate)
        if len(rest) == 2 and rest[0] == "audio" and rest[1].isdigit() and int(rest[1]) > 0:
            return StreamKey(model, device, "audio", int(rest[1]))
        raise TopicError(
            f"the topic {topic!r} must end in sensor, sensor/f32, audio or audio/<rate in Hz>"
        )

"""Input payload codecs: JSON sensor frames, binary sensor rows and PCM audio chunks.

JSON sensor frame (topic .../sensor), UTF-8:
    {"samples": [[v, ...], ...], "channels": ["name", ...], "device": "press-3", "seq": 7}
  `samples` rows by channels (the model's channel order unless `channels` names the columns;
  a stream keeps the columns of its first frame); `device` (optional) overrides the topic's
  device level, so one topic may carry many devices; `seq` (optional, increasing per stream)
  lets the bridge drop a QoS-1 redelivery; `{"end": true}` (with or without samples) ends the
  stream.

Binary sensor rows (topic .../sensor/f32): little-endian IEEE float32, row-major, steps x
  channels in the model's channel order, no header: a payload of 4 x channels x steps bytes.

Audio (topic .../audio[/<rate>]): signed 16-bit little-endian PCM, mono, at the topic's rate
  (or AUSCULT_MQTT_AUDIO_SAMPLE_RATE); any whole number of samples per message.

For the binary formats an empty payload ends the stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.sensor_input import parse_sensor_frame

F32_ROW_DTYPE = np.dtype("<f4")


class PayloadError(ValueError):
    """An input message that cannot be read in its topic's format."""


class SensorFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples: Any = Field(default=None, description="rows by channels; checked when scored")
    channels: list[str] | None = Field(default=None, description="the rows' column names")
    device: str | None = Field(default=None, description="overrides the topic's device")
    station: str | None = Field(default=None, max_length=64)
    seq: int | None = Field(default=None, ge=0, description="increasing per stream")
    end: bool = Field(default=False, description="the last frame of the stream")


def decode_sensor_json(payload: bytes) -> SensorFrame:
    """A JSON sensor frame, its numbers finite; PayloadError when it is not one."""
    try:
        return SensorFrame.model_validate(parse_sensor_frame(payload))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'frame'}: {err['msg']}"
            for err in exc.errors()
        )
        raise PayloadError(f"bad sensor frame: {problems}") from exc
    except ValueError as exc:  # SensorInputError: not JSON, not finite, nested too deeply
        raise PayloadError(str(exc)) from exc


def decode_f32_rows(payload: bytes, channels: int) -> list[list[float]]:
    """Binary rows as a list of rows; PayloadError when the payload holds no whole rows."""
    row_bytes = F32_ROW_DTYPE.itemsize * channels
    if len(payload) % row_bytes:
        raise PayloadError(
            f"a binary sensor payload of {len(payload)} bytes does not hold whole rows: "
            f"expected a multiple of {row_bytes} bytes ({channels} float32 channels)"
        )
    rows: list[list[float]] = (
        np.frombuffer(payload, dtype=F32_ROW_DTYPE).reshape(-1, channels).tolist()
    )
    return rows


def encode_f32_rows(rows: np.ndarray) -> bytes:
    """Rows [steps, channels] in the binary layout (for publishers and tests)."""
    return np.ascontiguousarray(rows, dtype=F32_ROW_DTYPE).tobytes()

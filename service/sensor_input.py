"""Sensor readings from JSON, checked: a body or stream frame becomes a finite float64 array
[steps, channels] in the model's channel order, or a SensorInputError saying what was wrong.
Nothing else escapes, whatever the input (deep nesting, 400-digit numbers, NaN literals).

Usage:

    # POST /v1/models/{name}/windows (in the scoring pool):
    samples = parse_sensor_samples(body, scorer.channel_names, max_steps=settings.max_sensor_steps)

    # WS sensor stream: parse each frame, then its rows (columns from the start message, if any):
    message = parse_sensor_frame(text)  # a dict; refuse it as a protocol error
    samples = sensor_rows(message.get("samples"), scorer.channel_names, columns=columns,
                          max_steps=settings.max_sensor_steps)  # refuse as a bad frame

Accepted shapes: `[[v, ...], ...]` (rows in the model's channel order) or
`{"samples": [[...], ...], "channels": ["name", ...]}` (columns named, in any order).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.config import DEFAULT_MAX_SENSOR_STEPS

# The models compute in float32: a reading beyond its range would become infinite there.
FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMBERS = (float, int)


class SensorInputError(ValueError):
    """The JSON is not a usable sensor series; the message says why."""


def _number(text: str) -> float:
    """Every JSON number as a float, refused unless finite in float32. float() of a 400-digit
    literal is inf rather than an OverflowError, so one check covers both."""
    value = float(text)
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        raise SensorInputError(
            f"the number {_abbreviate(text)} is beyond the range of readings the models "
            f"accept (magnitude at most {FLOAT32_MAX:.4g})"
        )
    return value


def _constant(text: str) -> float:
    raise SensorInputError(f"{text} is not a number: readings must be finite")


def _abbreviate(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}...{text[-6:]} ({len(text)} characters)"


def _loads(text: bytes | str, what: str) -> Any:
    """JSON with every number a finite float. The standard library's parser is used rather than
    orjson for its parse_int/parse_float/parse_constant hooks, which refuse a bad number as it is
    read; its RecursionError on deep nesting is caught here."""
    try:
        return json.loads(text, parse_int=_number, parse_float=_number, parse_constant=_constant)
    except RecursionError as exc:
        raise SensorInputError(f"{what} is nested too deeply to be a series of readings") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SensorInputError(f"{what} is not valid JSON: {exc}") from exc


def parse_sensor_samples(
    body: bytes | str,
    channel_names: tuple[str, ...],
    *,
    max_steps: int = DEFAULT_MAX_SENSOR_STEPS,
) -> NDArray[np.float64]:
    """The readings of a request body: a JSON array of rows, or an object with 'samples' and
    optionally 'channels' naming the columns."""
    data = _loads(body, "the body")
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"samples", "channels"})
        if unknown or "samples" not in data:
            raise SensorInputError(
                f"expected an object with 'samples' (and optionally 'channels'), got keys "
                f"{sorted(data)}"
            )
        return sensor_rows(
            data["samples"], channel_names, columns=data.get("channels"), max_steps=max_steps
        )
    return sensor_rows(data, channel_names, max_steps=max_steps)


def parse_sensor_frame(text: bytes | str) -> dict[str, Any]:
    """One sensor stream frame: a JSON object, its numbers finite floats."""
    message = _loads(text, "a frame")
    if not isinstance(message, dict):
        raise SensorInputError("a frame must be a JSON object")
    return message


def sensor_rows(
    rows: Any,
    channel_names: tuple[str, ...],
    *,
    columns: Any = None,
    max_steps: int = DEFAULT_MAX_SENSOR_STEPS,
) -> NDArray[np.float64]:
    """Parsed rows [steps, channels] as float64 in the model's channel order; `columns`, if
    given, names the rows' columns. The rows may come from any JSON parser: non-finite and
    overflowing values are refused here too."""
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise SensorInputError("samples must be a JSON array of rows, each an array of numbers")
    if len(rows) > max_steps:
        raise SensorInputError(
            f"the series has {len(rows)} steps; at most {max_steps} are accepted at once"
        )
    # One pass in the common case; bool is a subclass of int, hence `type(...) in`.
    if not all(type(value) in _NUMBERS for row in rows for value in row):
        if any(isinstance(value, bool) or value is None for row in rows for value in row):
            raise SensorInputError("samples must hold only numbers (no true, false or null)")
        raise SensorInputError("samples must hold only numbers (no strings, arrays or objects)")
    lengths = sorted({len(row) for row in rows})
    if len(lengths) > 1:
        raise SensorInputError(
            f"every row must hold the same number of values, got lengths {lengths}"
        )
    try:
        samples = np.asarray(rows, dtype=np.float64)
    except OverflowError as exc:  # an int beyond float64, from rows not parsed by _loads
        raise SensorInputError(f"a number is beyond the range of readings: {exc}") from exc
    out_of_range = ~(np.abs(samples) <= FLOAT32_MAX)  # NaN too
    if out_of_range.any():
        step, channel = (int(i) for i in np.argwhere(out_of_range)[0])
        raise SensorInputError(
            f"samples hold {int(out_of_range.sum())} value(s) that are not finite or beyond "
            f"{FLOAT32_MAX:.4g}, the first at step {step}, column {channel}"
        )
    if columns is not None:
        return _reorder(samples, columns, channel_names)
    if samples.ndim != 2:
        raise SensorInputError(
            f"samples must be a 2-D array of steps x channels, got {samples.ndim} dimension(s)"
        )
    if samples.shape[1] != len(channel_names):
        raise SensorInputError(
            f"samples have {samples.shape[1]} channels, the model expects {len(channel_names)}"
        )
    return samples


def _reorder(
    samples: NDArray[np.float64], names: Any, expected: tuple[str, ...]
) -> NDArray[np.float64]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SensorInputError("'channels' must be an array of channel names")
    missing = [n for n in expected if n not in names]
    unknown = [n for n in names if n not in expected]
    if missing or unknown or len(names) != len(expected):
        raise SensorInputError(
            f"'channels' must name each of the model's channels once: missing {missing}, "
            f"unknown {unknown} (the model's channels: {list(expected)})"
        )
    if samples.ndim != 2 or samples.shape[1] != len(names):
        raise SensorInputError(f"each row must hold {len(names)} numbers, one per named channel")
    return samples[:, [names.index(n) for n in expected]]

"""parse_sensor_samples, parse_sensor_frame and sensor_rows: the JSON shapes /windows and the
sensor stream accept, and a SensorInputError (never anything else) for everything they refuse,
hostile input included (issue 10, finding 5)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.sensor_input import (
    SensorInputError,
    parse_sensor_frame,
    parse_sensor_samples,
    sensor_rows,
)

CHANNELS = ("a", "b", "c")


def test_a_plain_array_of_rows_is_the_series() -> None:
    samples = parse_sensor_samples(b"[[1, 2.5, -3], [4, 5e-3, 6]]", CHANNELS)
    assert samples.dtype == np.float64
    np.testing.assert_array_equal(samples, [[1, 2.5, -3], [4, 5e-3, 6]])


def test_an_object_may_name_its_columns_in_any_order() -> None:
    body = json.dumps({"samples": [[3, 1, 2], [6, 4, 5]], "channels": ["c", "a", "b"]})
    np.testing.assert_array_equal(parse_sensor_samples(body, CHANNELS), [[1, 2, 3], [4, 5, 6]])
    plain = parse_sensor_samples(json.dumps({"samples": [[1, 2, 3]]}), CHANNELS)
    np.testing.assert_array_equal(plain, [[1, 2, 3]])


def test_a_frame_is_an_object_and_its_rows_follow_the_start_columns() -> None:
    message = parse_sensor_frame('{"type": "samples", "samples": [[3, 1, 2]]}')
    assert message["type"] == "samples"
    rows = sensor_rows(message["samples"], CHANNELS, columns=["c", "a", "b"])
    np.testing.assert_array_equal(rows, [[1, 2, 3]])


# The messages routes/windows.py gives today, kept; then what used to be a 500 or a verdict.
REFUSALS: list[tuple[str, str | bytes, str]] = [
    ("unknown key", '{"samples": [[1, 2, 3]], "x": 1}', "expected an object with 'samples'"),
    ("no samples", '{"channels": ["a"]}', "expected an object with 'samples' (and optionally"),
    ("not rows", "[1, 2, 3]", "samples must be a JSON array of rows, each an array of numbers"),
    ("a number", "7", "samples must be a JSON array of rows"),
    ("null", "[[1, null, 3]]", "samples must hold only numbers (no true, false or null)"),
    ("bool", "[[1, true, 3]]", "samples must hold only numbers (no true, false or null)"),
    ("ragged", "[[1, 2, 3], [1, 2]]", "every row must hold the same number of values, got "),
    ("bad names", '{"samples": [[1, 2, 3]], "channels": "abc"}', "'channels' must be an array"),
    (
        "missing name",
        '{"samples": [[1, 2]], "channels": ["a", "b"]}',
        "'channels' must name each of the model's channels once: missing ['c'], unknown []",
    ),
    (
        "row width vs names",
        '{"samples": [[1, 2]], "channels": ["a", "b", "c"]}',
        "each row must hold 3 numbers, one per named channel",
    ),
    ("too narrow", "[[1, 2]]", "samples have 2 channels, the model expects 3"),
    ("empty", "[]", "samples must be a 2-D array of steps x channels, got 1 dimension(s)"),
    ("string", '[[1, "2", 3]]', "samples must hold only numbers (no strings, arrays or objects)"),
    ("nested row", "[[1, [2], 3]]", "samples must hold only numbers (no strings, arrays or"),
    ("invalid", "[[1, 2, 3]", "the body is not valid JSON"),
    ("not UTF-8", b"[[1, 2, \xff]]", "the body is not valid JSON"),
    ("deep arrays", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("deep objects", '{"samples": ' * 50_000 + "1" + "}" * 50_000, "nested too deeply"),
    ("400-digit integer", f"[[1, {'9' * 400}, 3]]", "is beyond the range of readings"),
    ("400-digit float", f"[[1, 0.5, {'9' * 400}.5]]", "is beyond the range of readings"),
    ("1e400", "[[1, 1e400, 3]]", "the number 1e400 is beyond the range of readings"),
    ("1e200", "[[1, 1e200, 3]]", "the number 1e200 is beyond the range"),
    ("NaN", "[[1, NaN, 3]]", "NaN is not a number: readings must be finite"),
    ("Infinity", "[[1, Infinity, 3]]", "Infinity is not a number"),
    ("-Infinity", "[[1, -Infinity, 3]]", "-Infinity is not a number"),
]


@pytest.mark.parametrize(
    ("body", "reason"),
    [(body, reason) for _, body, reason in REFUSALS],
    ids=[name for name, _, _ in REFUSALS],
)
def test_refuses_what_is_not_a_usable_series(body: str | bytes, reason: str) -> None:
    with pytest.raises(SensorInputError) as caught:
        parse_sensor_samples(body, CHANNELS)
    assert reason in str(caught.value)


def test_a_400_digit_number_is_named_briefly() -> None:
    with pytest.raises(SensorInputError, match=r"9{12}\.\.\.9{6} \(400 characters\)"):
        parse_sensor_samples(f"[[1, 2, {'9' * 400}]]", CHANNELS)


def test_refuses_more_steps_than_allowed() -> None:
    body = json.dumps([[0, 1, 2]] * 11)
    assert parse_sensor_samples(body, CHANNELS, max_steps=11).shape == (11, 3)
    with pytest.raises(SensorInputError, match="the series has 11 steps; at most 10 are accepted"):
        parse_sensor_samples(body, CHANNELS, max_steps=10)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[1, 2]", "a frame must be a JSON object"),
        ("{", "a frame is not valid JSON"),
        ('{"samples": [[NaN]]}', "NaN is not a number"),
        ("[" * 100_000, "a frame is nested too deeply"),
    ],
)
def test_refuses_a_frame_that_is_not_an_object_of_finite_numbers(text: str, reason: str) -> None:
    with pytest.raises(SensorInputError, match=reason):
        parse_sensor_frame(text)


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([[1, 10**400, 3]], "a number is beyond the range of readings"),
        (
            [[1, float("nan"), 3]],
            "1 value(s) that are not finite or beyond 3.403e+38, the first at step 0, column 1",
        ),
        ([[1, 2, 3], [1e300, 2, 3]], "the first at step 1, column 0"),
    ],
)
def test_rows_from_any_parser_are_checked_for_range(rows: Any, reason: str) -> None:
    with pytest.raises(SensorInputError) as caught:
        sensor_rows(rows, CHANNELS)
    assert reason in str(caught.value)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)
ROWS = st.lists(
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=3, max_size=3),
    max_size=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        JSON_VALUES.map(json.dumps),
        ROWS.map(json.dumps),
        st.fixed_dictionaries({"samples": ROWS, "channels": st.just(list(CHANNELS))}).map(
            json.dumps
        ),
        st.text(max_size=200),
        st.binary(max_size=200),
    )
)
def test_any_body_is_a_finite_series_or_a_sensor_input_error(body: str | bytes) -> None:
    try:
        samples = parse_sensor_samples(body, CHANNELS)
    except SensorInputError:
        return
    assert samples.dtype == np.float64
    assert samples.ndim == 2
    assert samples.shape[1] == len(CHANNELS)
    assert np.isfinite(samples).all()

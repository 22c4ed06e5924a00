"""Fuzzed bodies to `POST /v1/models/{name}/windows`: any JSON (NaN and Infinity tokens
included), series of rows holding huge, tiny or non-finite numbers, deep nesting and numbers
of hundreds of digits. Every answer is a verdict with finite scores or a 4xx with a JSON
`detail`."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.service.fuzz.conftest import WINDOWS, WINDOWS_CHANNELS, FuzzServer
from tests.service.fuzz.forge import nested_json, rows_json
from tests.service.fuzz.properties import ANSWER_TIMEOUT_S, check_answer

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e300, max_value=1e300),
    st.integers(-(10**400), 10**400),
    st.sampled_from([0, 1e-320, 1e19, 1e200, -1e200, 1.7976931348623157e308]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(
            st.sampled_from(["samples", "channels", "type", "x"]), children, max_size=3
        ),
    ),
    max_leaves=40,
)


@st.composite
def series(draw: st.DrawFn) -> object:
    """Rows of the model's width (sometimes not), long enough to score (sometimes not)."""
    width = draw(st.one_of(st.just(WINDOWS_CHANNELS), st.integers(0, 6)))
    steps = draw(st.integers(0, 400))
    fill = draw(st.sampled_from(["noise", "constant", "drawn"]))
    if fill == "drawn":
        value = draw(numbers)
        rows: list[list[object]] = [[value] * width for _ in range(steps)]
    else:
        scale = draw(st.sampled_from([1.0, 1e-30, 1e19, 1e200]))
        rows = [
            [scale * ((i * 7 + c * 3) % 11 if fill == "noise" else 1.0) for c in range(width)]
            for i in range(steps)
        ]
    if draw(st.booleans()):
        names = [f"sensor_{c}" for c in range(WINDOWS_CHANNELS)]
        return {"samples": rows, "channels": draw(st.permutations(names))}
    return rows


def _post(server: FuzzServer, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/models/{WINDOWS}/windows",
        content=body,
        headers={**server.headers, "content-type": "application/json"},
        timeout=ANSWER_TIMEOUT_S,
    )


@given(json_values)
@FUZZ
def test_any_json_gets_an_answer(fuzz_server: FuzzServer, value: object) -> None:
    body = json.dumps(value, allow_nan=True).encode()
    check_answer(_post(fuzz_server, body), f"the body {body[:300]!r}")


@given(series())
@example([[1e200] * WINDOWS_CHANNELS] * 300)  # issue 10: 200 with non-finite scores
@FUZZ
def test_series_of_extreme_numbers_get_finite_verdicts_or_a_422(
    fuzz_server: FuzzServer, value: object
) -> None:
    body = json.dumps(value, allow_nan=True).encode()
    check_answer(_post(fuzz_server, body), f"the series {body[:300]!r}")


@given(
    depth=st.integers(1, 200_000),
    digits=st.integers(1, 6000),
    literal=st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "1e200", "-0"]),
)
@example(depth=100_000, digits=400, literal="1e200")  # issue 10: RecursionError, OverflowError
@settings(FUZZ, max_examples=20)
def test_deep_nesting_and_long_numbers_get_an_answer(
    fuzz_server: FuzzServer, depth: int, digits: int, literal: str
) -> None:
    for body, sent in [
        (nested_json(depth), f"arrays nested {depth} deep"),
        (rows_json(120, WINDOWS_CHANNELS, "9" * digits), f"rows of {digits}-digit numbers"),
        (rows_json(120, WINDOWS_CHANNELS, literal), f"rows of {literal}"),
    ]:
        check_answer(_post(fuzz_server, body), sent)

"""What every answer of the service must satisfy, whatever was sent: no 5xx, errors as JSON
with a `detail`, verdicts only from finite scores, and an answer in bounded time."""

from __future__ import annotations

import math
from typing import Any

import httpx

# No request the fuzz tests send may take longer than this to be answered (a hang).
ANSWER_TIMEOUT_S = 30.0


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_answer(response: httpx.Response, sent: str) -> None:
    """Assert the HTTP properties; `sent` describes the request for the failure message."""
    status = response.status_code
    assert status < 500, f"{status} for {sent}: {response.text[:300]}"
    if status >= 400:
        media = response.headers.get("content-type", "")
        assert media.startswith("application/json"), (
            f"{status} for {sent} is {media!r}, not JSON: {response.text[:300]}"
        )
        body = response.json()
        assert isinstance(body, dict), f"{status} for {sent}: {body!r}"
        assert isinstance(body.get("detail"), str), f"{status} for {sent}: no detail in {body!r}"
        return
    check_verdict(response.json(), sent)


def check_verdict(verdict: dict[str, Any], sent: str) -> None:
    """A 200 verdict (clip or series) carries only finite scores and ratios."""
    for key in ("score", "ratio", "max_ratio", "threshold"):
        if key in verdict:
            assert _finite(verdict[key]), f"{key} = {verdict[key]!r} in a verdict for {sent}"
    for block in verdict.get("blocks", []):
        assert _finite(block["score"]), f"block score {block['score']!r} for {sent}"
    for score in verdict.get("scores", []):
        assert _finite(score), f"step score {score!r} for {sent}"


def check_stream_message(message: dict[str, Any], sent: str) -> None:
    """A stream message is never an internal error and never a non-finite verdict."""
    if message.get("type") == "error":
        assert message.get("code") != "internal", f"internal error for {sent}: {message}"
    if message.get("type") == "score":
        assert _finite(message.get("score")), f"score message {message} for {sent}"
    if message.get("type") == "steps":
        assert all(_finite(s) for s in message.get("scores", [])), f"{message} for {sent}"

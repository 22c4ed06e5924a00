"""`auscult serve --log-format json`: every line the server writes is one JSON object; each answered
request has an access record with its id (the client's X-Request-ID, or the fresh one returned),
route template, status, duration, and the model, version and station where known; keys in query
strings stay out. The flag wins over AUSCULT_LOG_FORMAT, which the settings read."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from service.config import Settings
from tests.server import serve_process
from tests.service.clips import clip, small_audio_bundle

KEY = "json-log-key-0123456789ab"


def _records(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        record = json.loads(line)  # fails on any line that is not one JSON object
        assert isinstance(record, dict), line
        records.append(record)
    return records


def _access(text: str, request_id: str) -> dict[str, Any]:
    found = [
        r
        for r in _records(text)
        if r["logger"] == "service.access" and r.get("request_id") == request_id
    ]
    assert len(found) == 1, text[-3000:]
    return found[0]


def _wait_for_access(log: Path, request_id: str) -> None:
    """The access record is written right after the answer has gone."""
    deadline = time.monotonic() + 10
    while f'"request_id": "{request_id}"' not in log.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, log.read_text(encoding="utf-8")[-3000:]
        time.sleep(0.02)


def test_json_lines_with_request_fields(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "models" / "fan-3", name="fan", version="3")
    log = tmp_path / "serve.log"
    env = {"AUSCULT_API_KEYS": KEY, "AUSCULT_LOG_FORMAT": "text"}
    args = ("--log-level", "info", "--log-format", "json")
    with serve_process(tmp_path / "models", log, args=args, env=env) as served:
        scored = httpx.post(
            f"{served.url}/v1/models/fan/score?station=press-1",
            content=clip(1.0),
            headers={"Content-Type": "audio/wav", "X-API-Key": KEY, "X-Request-ID": "req-42"},
            timeout=60,
        )
        refused = httpx.get(f"{served.url}/v1/models?api_key={KEY}", timeout=10)
        missing = httpx.get(f"{served.url}/v1/models/pump", headers={"X-API-Key": KEY})
        stream_url = served.url.replace("http://", "ws://") + "/v1/models/fan/stream?station=s-9"
        with connect(stream_url, additional_headers={"X-API-Key": KEY, "X-Request-ID": "ws-1"}):
            pass
        answered = [r.headers["x-request-id"] for r in (scored, refused, missing)]
        for request_id in [*answered, "ws-1"]:
            _wait_for_access(log, request_id)
        text = served.log_text()

    assert scored.status_code == 200
    assert scored.headers["x-request-id"] == "req-42"
    records = _records(text)
    assert {"time", "level", "logger", "message"} <= records[0].keys()
    assert any(r["logger"].startswith("uvicorn") for r in records)  # uvicorn's own lines too
    assert KEY not in text

    access = _access(text, "req-42")
    assert access["level"] == "info"
    assert access["route"] == "/v1/models/{name}/score"
    assert access["status"] == 200
    assert access["method"] == "POST"
    assert access["path"] == "/v1/models/fan/score?station=press-1"
    assert (access["model"], access["version"], access["station"]) == ("fan", "3", "press-1")
    assert isinstance(access["duration_ms"], float)
    assert access["duration_ms"] > 0

    unauthorised = _access(text, refused.headers["x-request-id"])
    assert (unauthorised["status"], unauthorised["route"]) == (401, "/v1/models")
    assert unauthorised["path"] == "/v1/models?api_key=***"
    assert "model" not in unauthorised

    unknown = _access(text, missing.headers["x-request-id"])
    assert (unknown["status"], unknown["route"], unknown["model"]) == (
        404,
        "/v1/models/{name}",
        "pump",
    )
    assert "version" not in unknown

    stream = _access(text, "ws-1")
    assert (stream["method"], stream["status"], stream["route"]) == (
        "WEBSOCKET",
        101,
        "/v1/models/{name}/stream",
    )
    assert (stream["model"], stream["station"]) == ("fan", "s-9")


def test_the_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().log_format == "text"
    monkeypatch.setenv("AUSCULT_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("AUSCULT_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()

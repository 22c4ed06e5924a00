"""X-Request-ID on a real server: a sensible id sent by the client comes back, anything else is
replaced by a fresh UUID, and every answer carries one: routes, errors answered by middlewares
(401, 413), unmatched paths, a 500, and a stream's handshake. Records written for a request
carry its id, the traceback of a 500 included."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from websockets.sync.client import connect

from service.api.request_id import accepted_request_id
from service.app import create_app
from service.config import Settings
from service.logging_setup import JsonFormatter, RequestContextFilter
from tests.server import LiveServer, running_server
from tests.service.clips import clip, small_audio_bundle

KEY = "request-id-key-0123456789"
AUTH = {"X-API-Key": KEY}
SCORE = "/v1/models/fan/score"


class JsonLines(logging.Handler):
    """The JSON lines the service's formatter writes for a logger's records."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestContextFilter())
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    models = tmp_path_factory.mktemp("models")
    small_audio_bundle(models / "fan", name="fan")
    settings = Settings(
        models_dir=models,
        reload_poll_seconds=0,
        max_body_bytes=64 * 1024,
        api_keys=[SecretStr(KEY)],
    )
    app = create_app(settings)

    # A route that fails as a bug would: the real app, one route added by the test.
    @app.get("/test/bug")
    def bug() -> None:
        raise RuntimeError("a bug")

    with running_server(settings, app=app) as server:
        yield server


def _is_fresh_uuid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


@pytest.mark.parametrize(
    "sent", ["a1b2c3", "5f0e6f3c-2d7b-4a8e-9f1e-0c2b3a4d5e6f", "gw-7:000142", "x" * 128]
)
def test_a_sensible_id_comes_back(live: LiveServer, sent: str) -> None:
    response = httpx.get(f"{live.url}/v1/models", headers={**AUTH, "X-Request-ID": sent})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == sent


@pytest.mark.parametrize(
    "sent", ["", "x" * 129, "a b", "id;drop", "<script>", "é", "a\tb", "{}", "a/b"]
)
def test_any_other_id_is_replaced_by_a_fresh_one(live: LiveServer, sent: str) -> None:
    response = httpx.get(f"{live.url}/healthz", headers=[(b"X-Request-ID", sent.encode("utf-8"))])
    assert response.status_code == 200
    returned = response.headers["x-request-id"]
    assert returned != sent
    assert _is_fresh_uuid(returned)


def test_ids_are_fresh_for_every_request_without_one(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as http:
        ids = [http.get("/healthz").headers["x-request-id"] for _ in range(5)]
    assert all(_is_fresh_uuid(i) for i in ids)
    assert len(set(ids)) == 5
    assert accepted_request_id(None) != accepted_request_id(None)


def test_every_error_answer_carries_the_id(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as http:
        answers = {
            401: http.get("/v1/models", headers={"X-Request-ID": "e401"}),
            404: http.get("/nowhere", headers={"X-Request-ID": "e404"}),
            413: http.post(
                SCORE, content=b"\0" * (65 * 1024), headers={**AUTH, "X-Request-ID": "e413"}
            ),
            422: http.post(
                SCORE,
                content=b"RIFF",
                headers={**AUTH, "Content-Type": "audio/wav", "X-Request-ID": "e422"},
            ),
        }
    for status, response in answers.items():
        assert response.status_code == status, response.text
        assert response.headers["x-request-id"] == f"e{status}"


def test_a_500_carries_the_id_and_so_does_its_traceback(live: LiveServer) -> None:
    lines = JsonLines()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(lines)
    try:
        with httpx.Client(base_url=live.url) as http:
            response = http.get("/test/bug", headers={"X-Request-ID": "bug-1"})
        # uvicorn logs the traceback once the answer has gone.
        deadline = time.monotonic() + 10
        while not any('"exception"' in line for line in lines.lines):
            assert time.monotonic() < deadline, lines.lines
            time.sleep(0.01)
    finally:
        logger.removeHandler(lines)
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "bug-1"
    assert response.headers["connection"] == "close"
    traceback = [line for line in lines.lines if '"exception"' in line]
    assert len(traceback) == 1
    assert '"request_id": "bug-1"' in traceback[0]
    assert "RuntimeError: a bug" in traceback[0]


def test_a_scored_clip_and_a_stream_handshake_carry_the_id(live: LiveServer) -> None:
    scored = httpx.post(
        f"{live.url}{SCORE}",
        content=clip(1.0),
        headers={**AUTH, "Content-Type": "audio/wav", "X-Request-ID": "clip-7"},
        timeout=60,
    )
    assert scored.status_code == 200
    assert scored.headers["x-request-id"] == "clip-7"
    url = live.ws_url + "/v1/models/fan/stream"
    with connect(url, additional_headers={**AUTH, "X-Request-ID": "stream-7"}) as ws:
        assert ws.response is not None
        assert ws.response.headers["X-Request-ID"] == "stream-7"
    with connect(url, additional_headers=AUTH) as ws:
        assert ws.response is not None
        assert _is_fresh_uuid(ws.response.headers["X-Request-ID"])


def test_records_outside_a_request_carry_no_id() -> None:
    lines = JsonLines()
    logger = logging.getLogger("tests.request_id")
    logger.addHandler(lines)
    logger.propagate = False
    try:
        logger.warning("outside")
    finally:
        logger.removeHandler(lines)
    assert '"request_id"' not in lines.lines[0]

"""One error shape: every 4xx and 5xx is JSON `{"detail": ...}`; an unexpected exception is a
JSON 500 that says the connection closes, logged once; a client that leaves mid-upload is
counted as 499, not as a server error, and logged without a traceback."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.config import Settings
from tests.server import LiveServer, running_server
from tests.service.clips import small_audio_bundle

SCORE = "/v1/models/fan/score"


class Records(logging.Handler):
    """Every record a logger emits, kept for the test to read."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def tracebacks(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.exc_info]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    small_audio_bundle(folder / "fan", name="fan")
    return folder


@pytest.fixture
def live(models: Path) -> Iterator[LiveServer]:
    settings = Settings(models_dir=models, reload_poll_seconds=0, max_body_bytes=64 * 1024)
    app = create_app(settings)

    # A route that fails as a bug would: the real app, one route added by the test.
    @app.get("/test/bug")
    def bug() -> None:
        raise RuntimeError("a bug")

    with running_server(settings, app=app) as server:
        yield server


@pytest.fixture
def uvicorn_log() -> Iterator[Records]:
    """uvicorn's error log, attached once the server has configured logging."""
    records = Records()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(records)
    try:
        yield records
    finally:
        logger.removeHandler(records)


def _requests_by_status(url: str, route: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        s.labels["status"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "auscult_http_requests_total" and s.labels["route"] == route
    }


def test_an_unexpected_exception_is_a_json_500_that_closes_the_connection(
    live: LiveServer, uvicorn_log: Records
) -> None:
    with httpx.Client(base_url=live.url) as http:
        response = http.get("/test/bug")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert response.headers["connection"] == "close"
    [logged] = uvicorn_log.tracebacks()
    assert "a bug" in str(logged.exc_info[1] if logged.exc_info else "")


def test_client_errors_are_json_with_a_detail(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as http:
        responses = {
            404: http.get("/nowhere"),
            405: http.delete("/healthz"),
            413: http.post(SCORE, content=b"\0" * (65 * 1024)),
            422: http.post(f"{SCORE}?station={'s' * 65}", content=b"RIFF"),
        }
    for status, response in responses.items():
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert response.json()["detail"]


def test_a_client_that_aborts_its_upload_is_a_499_not_a_server_error(
    live: LiveServer, uvicorn_log: Records, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.api.errors")
    with socket.create_connection((live.host, live.port)) as client:
        client.sendall(
            f"POST {SCORE} HTTP/1.1\r\nHost: test\r\nContent-Type: audio/wav\r\n"
            "Content-Length: 60000\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        # uvicorn sends 100 Continue once the app reads the body: the upload is under way.
        assert client.recv(1024).startswith(b"HTTP/1.1 100")
        client.sendall(b"\0" * 1000)
    for _ in range(100):
        counts = _requests_by_status(live.url, "/v1/models/{name}/score")
        if counts:
            break
        time.sleep(0.05)
    assert counts == {"499": 1.0}
    assert uvicorn_log.tracebacks() == []
    assert [r for r in caplog.records if r.exc_info] == []
    assert any("closed the connection" in r.getMessage() for r in caplog.records)

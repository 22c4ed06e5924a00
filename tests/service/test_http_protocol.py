"""Stalled clients are cut off: a request head that does not arrive in time closes the
connection, and past the connection cap (sized below the descriptor limit) the longest-waiting
connection makes room, so that floods of stalled clients never stop /healthz answering."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from tests.server import free_port, running_server, wait_until_ready
from tests.service.clips import small_audio_bundle
from tests.service.slow_clients import read_until_closed, stalled_head, stalled_upload

QUIET = {
    "AUSCULT_RELOAD_POLL_SECONDS": "0",
    "AUSCULT_WORKER_THREADS": "1",
    "AUSCULT_DRAIN_SECONDS": "0",
    "OMP_NUM_THREADS": "1",
}
# Far above every deadline these tests set: reaching it means the server never closed.
NEVER_S = 30.0


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    small_audio_bundle(folder / "fan", name="fan")
    return folder


def test_a_request_head_that_never_ends_is_cut_off(models: Path) -> None:
    settings = Settings(models_dir=models, reload_poll_seconds=0, header_timeout_seconds=0.5)
    with running_server(settings) as live:
        assert read_until_closed(stalled_head(live.host, live.port), NEVER_S) == b""


def test_two_hundred_stalled_clients_are_cut_off_while_health_checks_answer(
    models: Path,
) -> None:
    settings = Settings(
        models_dir=models,
        reload_poll_seconds=0,
        header_timeout_seconds=1.0,
        body_timeout_seconds=1.0,
    )
    with running_server(settings) as live:
        heads = [stalled_head(live.host, live.port) for _ in range(100)]
        uploads = [stalled_upload(live.host, live.port) for _ in range(100)]
        assert httpx.get(f"{live.url}/healthz", timeout=5).status_code == 200
        for client in heads:
            assert read_until_closed(client, NEVER_S) == b""
        answers = [read_until_closed(client, NEVER_S) for client in uploads]
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"connection: close" in answer.lower()
        assert b'"detail":"the request body did not arrive in full within 1 s"' in answer


@contextmanager
def _served_with_descriptor_limit(models: Path, log: Path, limit: int) -> Iterator[str]:
    """`auscult serve` under `ulimit -n LIMIT` (soft and hard), killed on exit."""
    port = free_port()
    serve = (
        f"ulimit -n {limit} && exec {sys.executable} -m service.cli serve --models {models} "
        f"--host 127.0.0.1 --port {port} --log-level warning --workers 1"
    )
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["/bin/sh", "-c", serve],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **QUIET},
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, timeout_s=120, process=process)
        yield url
    finally:
        process.kill()
        process.wait(timeout=30)


def test_at_the_descriptor_limit_health_checks_still_answer(models: Path, tmp_path: Path) -> None:
    # 300 stalled clients against 256 descriptors, with deadlines far off: only the connection
    # cap keeps descriptors free.
    with _served_with_descriptor_limit(models, tmp_path / "serve.log", 256) as url:
        stalled = [stalled_head("127.0.0.1", int(url.rsplit(":", 1)[1])) for _ in range(300)]
        try:
            for _ in range(3):
                assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
            assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        finally:
            for client in stalled:
                client.close()
        log = (tmp_path / "serve.log").read_text()
    assert "Too many open files" not in log
    assert "connections open: closing the ones that wait longest" in log


def test_a_request_uvicorn_cannot_parse_gets_a_json_error_and_a_close(models: Path) -> None:
    settings = Settings(models_dir=models, reload_poll_seconds=0)
    with running_server(settings) as live, socket.create_connection((live.host, live.port)) as s:
        # A header name must be an HTTP token; ';' is not one.
        s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\ncontent-length;: 1\r\n\r\n")
        answer = read_until_closed(s, NEVER_S)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert b"content-type: application/json" in head.lower()
    assert b"connection: close" in head.lower()
    error = json.loads(body)
    assert error["detail"].startswith("malformed HTTP request")
    assert error["error"] == error["detail"]

"""Admission control on a real server: while the expected wait for a scoring thread is over
AUSCULT_MAX_QUEUE_WAIT_SECONDS, a scoring request is refused from its head (503, Retry-After)
before its body is sent; the connection stays open unless the body will never come, and is not
read again for a random half to all of its Retry-After."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.config import Settings
from tests.server import LiveServer, running_server
from tests.service.clips import clip, small_audio_bundle
from tests.service.slow_clients import SCORE, read_until_closed

# Generous bounds on waiting for an answer that must come, not measurements.
ANSWER_S = 30.0
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"


def _head(length: int, *, expect_continue: bool = False) -> bytes:
    expect = "Expect: 100-continue\r\n" if expect_continue else ""
    return (
        f"POST {SCORE} HTTP/1.1\r\nHost: test\r\nContent-Type: audio/wav\r\n"
        f"Content-Length: {length}\r\n{expect}\r\n"
    ).encode()


def _read_response(client: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """One whole response from a connection that stays open: status line, headers, body."""
    client.settimeout(ANSWER_S)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole head: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        body += client.recv(65536)
    return status, headers, body


def _parse(raw: bytes) -> tuple[str, dict[str, str], dict[str, object]]:
    head, body = raw.split(b"\r\n\r\n", 1)
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return status, headers, json.loads(body)


@contextmanager
def _admitted_and_reading(live: LiveServer, length: int) -> Iterator[socket.socket]:
    """A scoring request that was admitted and is reading its body: uvicorn answers
    `100 Continue` only once the route asks for the body. The caller sends the body."""
    client = socket.create_connection((live.host, live.port))
    try:
        client.sendall(_head(length, expect_continue=True))
        status, _, _ = _read_response(client)
        assert status == "HTTP/1.1 100 Continue"
        yield client
    finally:
        client.close()


def _rejections(live: LiveServer) -> float:
    for line in httpx.get(live.url + "/metrics").text.splitlines():
        if line.startswith("auscult_pool_rejections_total "):
            return float(line.split()[1])
    raise AssertionError("no auscult_pool_rejections_total")


@contextmanager
def _strict(tmp_path: Path, **overrides: Any) -> Iterator[LiveServer]:
    """A one-thread server that allows no wait unless `overrides` says otherwise."""
    small_audio_bundle(tmp_path / "fan", name="fan")
    chosen: dict[str, Any] = {"max_queue_wait_seconds": 0.0, **overrides}
    configured = Settings(models_dir=tmp_path, reload_poll_seconds=0, worker_threads=1, **chosen)
    with running_server(configured) as live:
        # One clip scored: the pool knows how long a job takes (before that it admits all).
        warm = httpx.post(
            live.url + SCORE, content=clip(2.0), headers={"Content-Type": "audio/wav"}
        )
        assert warm.status_code == 200, warm.text
        yield live


@pytest.fixture
def strict_server(tmp_path: Path) -> Iterator[LiveServer]:
    """One scoring thread and no wait allowed: any work ahead of a request refuses it."""
    with _strict(tmp_path) as live:
        yield live


def test_a_request_behind_work_over_the_bound_is_refused_before_its_body_is_sent(
    strict_server: LiveServer,
) -> None:
    body = clip(2.0, seed=3)
    with _admitted_and_reading(strict_server, len(body)) as ahead:
        probe = socket.create_connection((strict_server.host, strict_server.port))
        try:
            probe.sendall(_head(len(body)))  # the head only: the answer comes first
            status, headers, detail = _read_response(probe)
            assert status == "HTTP/1.1 503 Service Unavailable"
            assert headers["retry-after"] == "1"
            assert "over the limit of 0 s" in json.loads(detail)["detail"]
            assert _rejections(strict_server) == 1
            # Counted under its route, though refused before routing.
            refused = (
                'auscult_http_requests_total{method="POST",route="/v1/models/{name}/score",'
                'status="503"} 1.0'
            )
            assert refused in httpx.get(strict_server.url + "/metrics").text
            # The connection stays open: the body sent now is dropped, the next request served.
            assert "connection" not in headers
            probe.sendall(body + HEALTHZ)
            assert _read_response(probe)[0] == "HTTP/1.1 200 OK"
        finally:
            probe.close()

        # The request ahead is still served.
        ahead.sendall(body)
        status, _, answer = _read_response(ahead)
        assert status == "HTTP/1.1 200 OK", answer

    # Nothing ahead any more: the same request is admitted.
    with _admitted_and_reading(strict_server, len(body)) as again:
        again.sendall(body)
        assert _read_response(again)[0] == "HTTP/1.1 200 OK"


def test_a_refused_client_waiting_for_100_continue_is_answered_and_closed(
    strict_server: LiveServer,
) -> None:
    body = clip(2.0, seed=6)
    with _admitted_and_reading(strict_server, len(body)):
        probe = socket.create_connection((strict_server.host, strict_server.port))
        probe.sendall(_head(len(body), expect_continue=True))
        # No `100 Continue`: the final answer, and the connection closed (the body never comes).
        status, headers, _ = _parse(read_until_closed(probe, ANSWER_S))
        assert status == "HTTP/1.1 503 Service Unavailable"
        assert headers["connection"] == "close"


def test_a_refused_body_sent_at_once_is_dropped_and_the_connection_kept(
    strict_server: LiveServer,
) -> None:
    body = clip(2.0, seed=4)
    with _admitted_and_reading(strict_server, len(body)) as ahead:
        client = socket.create_connection((strict_server.host, strict_server.port))
        try:
            client.sendall(_head(len(body)) + body)
            status, headers, _ = _read_response(client)
            assert status == "HTTP/1.1 503 Service Unavailable"
            assert "connection" not in headers
            client.sendall(HEALTHZ)
            assert _read_response(client)[0] == "HTTP/1.1 200 OK"
        finally:
            client.close()
        ahead.sendall(body)
        assert _read_response(ahead)[0] == "HTTP/1.1 200 OK"


def _decoded(live: LiveServer) -> float:
    for line in httpx.get(live.url + "/metrics").text.splitlines():
        if line.startswith('auscult_stage_duration_seconds_count{stage="decode"}'):
            return float(line.split()[1])
    return 0.0


@contextmanager
def _long_clip_being_scored(live: LiveServer, seed: int) -> Iterator[Future[httpx.Response]]:
    """A 600 s clip holding the only scoring thread for a while: yields once it is decoded,
    when its whole body was read, so only the job in the pool is ahead of the next request."""
    decoded = _decoded(live)
    with ThreadPoolExecutor(1) as background:
        scoring = background.submit(
            httpx.post,
            live.url + SCORE,
            content=clip(600.0, seed=seed),
            headers={"Content-Type": "audio/wav"},
            timeout=ANSWER_S,
        )
        while _decoded(live) == decoded:
            assert not scoring.done(), scoring.result().text
        yield scoring


def test_a_clip_being_scored_refuses_the_next_one_from_its_head(strict_server: LiveServer) -> None:
    with _long_clip_being_scored(strict_server, seed=5) as scoring:
        probe = socket.create_connection((strict_server.host, strict_server.port))
        probe.sendall(_head(len(clip(2.0, seed=5))))
        try:
            status, headers, _ = _read_response(probe)
        finally:
            probe.close()
        assert scoring.result().status_code == 200
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert int(headers["retry-after"]) >= 1


def _held_and_others_served(held: socket.socket, live: LiveServer) -> float:
    """Sends /healthz on a connection that was just refused, then on a new one; the seconds
    the held one took to answer, after asserting that the new one was answered first."""
    started = time.monotonic()
    held.sendall(HEALTHZ)
    with socket.create_connection((live.host, live.port)) as other:
        other.sendall(HEALTHZ)
        assert _read_response(other)[0] == "HTTP/1.1 200 OK"
        other_done = time.monotonic()
    assert _read_response(held)[0] == "HTTP/1.1 200 OK"
    held_done = time.monotonic()
    assert other_done < held_done
    return held_done - started


def _held(seconds: float, retry_after: int) -> bool:
    """Whether a connection was held as a refusal with `retry_after` asks: for at least half
    of it and not much more than all of it (an answer takes a moment after the hold)."""
    return 0.45 * retry_after <= seconds <= retry_after + 0.25


def test_a_refused_client_that_sends_again_at_once_is_read_within_its_retry_after(
    strict_server: LiveServer,
) -> None:
    body = clip(2.0, seed=7)
    with _admitted_and_reading(strict_server, len(body)) as ahead:
        with socket.create_connection((strict_server.host, strict_server.port)) as client:
            client.sendall(_head(len(body)) + body)
            status, headers, _ = _read_response(client)
            assert status == "HTTP/1.1 503 Service Unavailable"
            assert headers["retry-after"] == "1"
            # Its next request waits for part of the Retry-After; other connections are served.
            assert _held(_held_and_others_served(client, strict_server), 1)
            # Held once: the request after that is answered as usual.
            client.sendall(HEALTHZ)
            assert _read_response(client)[0] == "HTTP/1.1 200 OK"
        ahead.sendall(body)
        assert _read_response(ahead)[0] == "HTTP/1.1 200 OK"


def test_a_held_connection_is_not_closed_for_a_late_request_head(tmp_path: Path) -> None:
    # A head deadline shorter than the hold: the head the client sent during the hold counts
    # as arriving when the hold ends, so the connection is not closed as a slow client.
    with _strict(tmp_path, header_timeout_seconds=0.3) as live:
        body = clip(2.0, seed=8)
        with _admitted_and_reading(live, len(body)) as ahead:
            with socket.create_connection((live.host, live.port)) as client:
                client.sendall(_head(len(body)) + body)
                assert _read_response(client)[0] == "HTTP/1.1 503 Service Unavailable"
                assert _held(_held_and_others_served(client, live), 1)
            ahead.sendall(body)
            assert _read_response(ahead)[0] == "HTTP/1.1 200 OK"


def test_clients_refused_together_are_read_again_at_different_times(
    strict_server: LiveServer,
) -> None:
    # Held for the same time, clients refused in one burst would come back in one burst: each
    # client's hold is timed from its own refusal, and the holds differ.
    body = clip(2.0, seed=11)
    with _admitted_and_reading(strict_server, len(body)) as ahead:
        clients = [
            socket.create_connection((strict_server.host, strict_server.port)) for _ in range(10)
        ]
        try:
            refused = []  # when each client had its refusal; its hold began just before
            for client in clients:
                client.sendall(_head(len(body)) + body)
                status, headers, _ = _read_response(client)
                refused.append(time.monotonic())
                assert status == "HTTP/1.1 503 Service Unavailable"
                assert headers["retry-after"] == "1"
                client.sendall(HEALTHZ)

            def answered_after(client: socket.socket, since: float) -> float:
                assert _read_response(client)[0] == "HTTP/1.1 200 OK"
                return time.monotonic() - since

            with ThreadPoolExecutor(len(clients)) as readers:
                answered = list(readers.map(answered_after, clients, refused))
        finally:
            for client in clients:
                client.close()
        ahead.sendall(body)
        assert _read_response(ahead)[0] == "HTTP/1.1 200 OK"
    assert all(_held(seconds, 1) for seconds in answered), answered
    # Ten holds drawn from half a second spread over less than 0.1 s: about 4 in a million.
    assert max(answered) - min(answered) >= 0.1, answered


def test_a_request_refused_by_a_full_pool_holds_its_connection_too(tmp_path: Path) -> None:
    # Admission lets everything in (no bound on the wait); the pool has one thread, no queue.
    with _strict(tmp_path, max_queue_wait_seconds=3600, pool_queue_limit=0) as live:
        body = clip(2.0, seed=10)
        with _long_clip_being_scored(live, seed=9) as scoring:
            with socket.create_connection((live.host, live.port)) as client:
                client.sendall(_head(len(body)) + body)
                status, headers, detail = _read_response(client)
                assert status == "HTTP/1.1 503 Service Unavailable", detail
                assert "scoring slots are busy" in json.loads(detail)["detail"]
                retry_after = int(headers["retry-after"])
                assert _held(_held_and_others_served(client, live), retry_after)
            assert scoring.result().status_code == 200

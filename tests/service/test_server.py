"""`auscult serve` as operators run it: draining on SIGTERM (exit status 0, requests cut at the
shutdown timeout answered 503), no keys in the log, several workers whose /metrics add
up and who all follow a reload, and clear refusals of bad arguments."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
import websockets
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from service.config import Settings
from service.metrics import MULTIPROC_ENV
from service.server import (
    WorkerPlan,
    add_serve_arguments,
    plan_workers,
    run_server,
    shared_metrics_folder,
)
from tests.server import processes_marked, serve_process
from tests.service.clips import clip, small_audio_bundle
from tests.service.slow_clients import read_until_closed

QUIET = {"AUSCULT_RELOAD_POLL_SECONDS": "0", "AUSCULT_WORKER_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return parser.parse_args(list(argv))


def test_a_missing_models_folder_is_refused_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_server(_serve_args("--models", str(tmp_path / "absent"))) == 2
    assert f"the models folder {tmp_path / 'absent'} does not exist" in capsys.readouterr().err


def test_bad_settings_and_worker_counts_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_server(_serve_args("--models", str(tmp_path), "--workers", "0")) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    monkeypatch.setenv("AUSCULT_API_KEYS", "short")
    assert run_server(_serve_args("--models", str(tmp_path))) == 2
    assert "keys need at least 16" in capsys.readouterr().err


def test_sigterm_drains_by_default_then_exits_with_status_0(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "models" / "fan", name="fan")
    wav = clip(1.0)
    # No AUSCULT_DRAIN_SECONDS: the default drain is what operators get.
    with serve_process(
        tmp_path / "models", tmp_path / "serve.log", env=QUIET, default_drain=True
    ) as served:
        signalled = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        readiness = httpx.get(f"{served.url}/readyz")
        # Still serving while the load balancer takes it out of rotation.
        scored = httpx.post(
            f"{served.url}/v1/models/fan/score",
            content=wav,
            headers={"Content-Type": "audio/wav"},
        )
        assert httpx.get(f"{served.url}/healthz").status_code == 200
        code = served.process.wait(timeout=30)
        stopped_after = time.monotonic() - signalled
    assert readiness.status_code == 503
    assert readiness.json()["reason"] == "draining: the server is shutting down"
    assert scored.status_code == 200
    assert Settings().drain_seconds <= stopped_after < 20
    assert code == 0, served.log_text()


def test_a_request_cut_at_the_shutdown_timeout_gets_a_json_503(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "models" / "fan", name="fan")
    env = {**QUIET, "AUSCULT_DRAIN_SECONDS": "0.2", "AUSCULT_SHUTDOWN_TIMEOUT_SECONDS": "1"}
    with serve_process(tmp_path / "models", tmp_path / "serve.log", env=env) as served:
        host, port = served.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as client:
            client.sendall(
                b"POST /v1/models/fan/score HTTP/1.1\r\nHost: test\r\n"
                b"Content-Type: audio/wav\r\nContent-Length: 10000\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            # 100 Continue: the app is reading the body, which never comes in full.
            assert client.recv(1024).startswith(b"HTTP/1.1 100")
            client.sendall(b"\0" * 1000)
            served.process.send_signal(signal.SIGTERM)
            answer = read_until_closed(client, 30.0)
        code = served.process.wait(timeout=30)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), answer
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"detail": "the server is shutting down; retry the request"}
    assert code == 0, served.log_text()


def test_keys_in_query_strings_never_reach_the_log(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "models" / "fan", name="fan")
    key = "query-key-0123456789abcdef"
    env = {**QUIET, "AUSCULT_DRAIN_SECONDS": "0", "AUSCULT_API_KEYS": key}
    log = tmp_path / "serve.log"
    with serve_process(tmp_path / "models", log, args=("--log-level", "info"), env=env) as served:
        assert httpx.get(f"{served.url}/v1/models?api_key={key}").status_code == 401
        assert httpx.get(f"{served.url}/healthz?station=press-1&token={key}").status_code == 200

        async def stream_by_query() -> None:
            url = served.url.replace("http://", "ws://") + f"/v1/models/fan/stream?api_key={key}"
            async with websockets.connect(url) as stream:
                await stream.close()

        asyncio.run(stream_by_query())
        text = served.log_text()
    assert key not in text
    assert "GET /v1/models?api_key=*** HTTP/1.1" in text
    assert "GET /healthz?station=press-1&token=*** HTTP/1.1" in text
    assert "/v1/models/fan/stream?api_key=***" in text


def _per_worker_scored(folder: Path) -> dict[str, float]:
    """auscult_scored_total as each worker process wrote it, read from its own file."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        families = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        counts[path.stem] = sum(
            s.value for f in families for s in f.samples if s.name == "auscult_scored_total"
        )
    return counts


def test_two_workers_report_their_sum_on_metrics(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "models" / "fan", name="fan")
    shared = tmp_path / "prometheus"
    wav = clip(1.0)
    env = {**QUIET, "PROMETHEUS_MULTIPROC_DIR": str(shared)}

    async def burst(url: str, n: int) -> None:
        # A new connection per request, so the kernel spreads them over both workers.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
            responses = await asyncio.gather(
                *(
                    http.post(
                        "/v1/models/fan/score",
                        content=wav,
                        headers={"Content-Type": "audio/wav"},
                    )
                    for _ in range(n)
                )
            )
        assert {r.status_code for r in responses} == {200}

    args = ("--workers", "2")
    with serve_process(tmp_path / "models", tmp_path / "serve.log", args=args, env=env) as served:
        # The supervisor and its two workers, found by the marker in their environment.
        assert len(processes_marked(served.marker)) >= 3
        sent = 0
        while sent < 200:
            asyncio.run(burst(served.url, 8))
            sent += 8
            per_worker = _per_worker_scored(shared)
            if len(per_worker) == 2 and all(per_worker.values()):
                break
        assert sum(per_worker.values()) == sent
        assert len(per_worker) == 2, f"one worker took every request: {per_worker}"
        # Whichever worker answers, /metrics holds both workers' counts.
        for _ in range(4):
            with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as http:
                text = http.get(f"{served.url}/metrics").text
            [scored] = [
                s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if s.name == "auscult_scored_total"
            ]
            assert scored == sent
    # Stopping the server stops its workers too: none is left running after the test.
    assert processes_marked(served.marker) == []


def test_a_burst_of_keep_alive_clients_is_spread_over_the_workers(tmp_path: Path) -> None:
    """16 clients that each open one connection at the same moment and keep it: every worker
    gets some of them (each worker listens on a socket of its own; with one shared socket the
    first worker to wake could take them all, leaving the other idle)."""
    small_audio_bundle(tmp_path / "models" / "fan", name="fan")
    shared = tmp_path / "prometheus"
    wav = clip(1.0)
    env = {**QUIET, "PROMETHEUS_MULTIPROC_DIR": str(shared)}

    async def client(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for _ in range(3):  # on the one keep-alive connection
                response = await http.post(
                    "/v1/models/fan/score", content=wav, headers={"Content-Type": "audio/wav"}
                )
                assert response.status_code == 200

    async def burst(url: str) -> None:
        await asyncio.gather(*(client(url) for _ in range(16)))

    with serve_process(
        tmp_path / "models", tmp_path / "serve.log", args=("--workers", "2"), env=env
    ) as served:
        asyncio.run(burst(served.url))
        per_worker = _per_worker_scored(shared)
    assert sum(per_worker.values()) == 48
    # All 16 on one worker has odds of 1 in 32,768 when the kernel spreads them.
    assert len(per_worker) == 2, per_worker
    assert all(per_worker.values()), per_worker


def _model_info(text: str) -> dict[str, float]:
    return {
        s.labels["version"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "auscult_model_info" and s.labels["model"] == "fan"
    }


def test_one_reload_request_reaches_every_worker(tmp_path: Path) -> None:
    models = tmp_path / "models"
    small_audio_bundle(models / "fan-1", name="fan", version="1")
    shared = tmp_path / "prometheus"
    wav = clip(1.0)
    # No polling: only the reload request can make a worker see the new bundle.
    env = {
        **QUIET,
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "AUSCULT_RELOAD_WAIT_SECONDS": "20",
        "AUSCULT_POOL_QUEUE_LIMIT": "32",  # 20 requests at once, none refused for a full pool
    }
    fresh = httpx.Limits(max_keepalive_connections=0)  # each request may reach either worker

    async def versions(url: str, n: int) -> list[str]:
        async with httpx.AsyncClient(base_url=url, limits=fresh, timeout=30) as http:
            responses = await asyncio.gather(
                *(
                    http.post(
                        "/v1/models/fan/score", content=wav, headers={"Content-Type": "audio/wav"}
                    )
                    for _ in range(n)
                )
            )
        assert {r.status_code for r in responses} == {200}
        return [r.json()["version"] for r in responses]

    args = ("--workers", "2")
    with serve_process(models, tmp_path / "serve.log", args=args, env=env) as served:
        # Both workers serve version 1 (each wrote its model_info) before the bundle changes.
        deadline = time.monotonic() + 120
        while len(list(shared.glob("gauge_livemax_*.db"))) < 2:
            assert time.monotonic() < deadline, "the second worker never loaded the model"
            time.sleep(0.1)
        staging = models / ".staging-fan-2"
        small_audio_bundle(staging, name="fan", version="2")
        staging.rename(models / "fan-2")
        reload = httpx.post(f"{served.url}/v1/models/reload", timeout=60).json()
        after = asyncio.run(versions(served.url, 20))
        with httpx.Client(limits=fresh) as http:
            infos = [_model_info(http.get(f"{served.url}/metrics").text) for _ in range(4)]
        running = processes_marked(served.marker)
    assert reload["all_workers_reloaded"] is True, reload
    # Two distinct processes of this server, each serving version 2 once the answer came.
    pids = {w["pid"] for w in reload["workers"]}
    assert len(pids) == 2
    assert pids <= set(running)
    assert [(w["reloaded"], w["models"]) for w in reload["workers"]] == [(True, {"fan": "2"})] * 2
    assert after == ["2"] * 20
    assert infos == [{"1": 0.0, "2": 1.0}] * 4
    assert processes_marked(served.marker) == []


def test_workers_get_a_fresh_metrics_folder_that_is_removed_afterwards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with shared_metrics_folder() as folder:
        assert os.environ[MULTIPROC_ENV] == folder
        assert list(Path(folder).iterdir()) == []
    assert not Path(folder).exists()
    assert MULTIPROC_ENV not in os.environ


def test_a_given_metrics_folder_is_cleared_of_old_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("kept")
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    with shared_metrics_folder() as folder:
        assert folder == str(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert tmp_path.exists()


def test_by_default_every_usable_cpu_gets_a_worker_with_one_scoring_thread() -> None:
    assert _serve_args().workers is None  # run_server then asks usable_cpus()
    assert plan_workers(4, None, None) == WorkerPlan(workers=4, threads=1)
    # Fewer workers than CPUs: each gets its share as scoring threads.
    assert plan_workers(4, 1, None) == WorkerPlan(workers=1, threads=4)
    assert plan_workers(4, 2, None) == WorkerPlan(workers=2, threads=2)
    assert plan_workers(3, 2, None) == WorkerPlan(workers=2, threads=1)
    assert plan_workers(2, 8, None) == WorkerPlan(workers=8, threads=1)
    # AUSCULT_WORKER_THREADS, when set, is kept.
    assert plan_workers(4, None, 3) == WorkerPlan(workers=4, threads=3)

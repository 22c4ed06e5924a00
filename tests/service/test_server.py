"""`auscult serve` as operators run it: draining on SIGTERM, several workers whose /metrics add
up, and clear refusals of bad arguments."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import MULTIPROC_ENV
from service.server import add_serve_arguments, run_server, shared_metrics_folder
from tests.server import serve_process
from tests.service.clips import clip, small_audio_bundle

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


def test_sigterm_drains_before_stopping(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "models" / "fan", name="fan")
    wav = clip(1.0)
    env = {**QUIET, "AUSCULT_DRAIN_SECONDS": "2"}
    with serve_process(tmp_path / "models", tmp_path / "serve.log", env=env) as served:
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
    assert 2.0 <= stopped_after < 15
    # uvicorn re-raises the signal after its graceful shutdown.
    assert code in (0, -signal.SIGTERM), served.log_text()


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

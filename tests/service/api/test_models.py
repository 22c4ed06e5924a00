"""GET /v1/models, GET /v1/models/{name} and hot reloads (POST /v1/models/reload and polling),
with requests flowing while a bundle is replaced."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import HTTPException

from service.api.deps import get_model
from service.config import Settings
from service.metrics import Metrics
from service.runtime import Runtime
from tests.bundle_factory import write_broken_bundle
from tests.server import running_server
from tests.service.clips import SMALL_FEATURES, small_audio_bundle


def _stage(models: Path, folder: str, **bundle: Any) -> None:
    """Write a bundle beside the served ones, then rename it into place in one step."""
    staging = models / f".staging-{folder}"
    small_audio_bundle(staging, **bundle)
    staging.rename(models / folder)


def test_models_are_listed_and_described(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "fan-2", name="fan", version="2")
    small_audio_bundle(tmp_path / "fan-1", name="fan", version="1")
    write_broken_bundle(tmp_path / "pump", "wrong_input_name", name="pump")
    with running_server(Settings(models_dir=tmp_path, reload_poll_seconds=0)) as live:
        listing = httpx.get(f"{live.url}/v1/models").json()
        detail = httpx.get(f"{live.url}/v1/models/fan").json()
        missing = httpx.get(f"{live.url}/v1/models/pump")
    [model] = listing["models"]
    assert (model["name"], model["version"], model["kind"], model["bundle"]) == (
        "fan",
        "2",
        "audio",
        "fan-2",
    )
    [refused] = listing["refused"]
    assert refused["bundle"] == "pump"
    assert "the graph has no input 'blocks'" in refused["error"]
    assert str(tmp_path) not in refused["error"]  # the folder name only, not where models live
    assert detail["status"] == "serving"
    assert detail["manifest"]["features"]["n_mels"] == SMALL_FEATURES["n_mels"]
    assert detail["threshold"] == detail["manifest"]["clip_decision"]["threshold"]
    assert missing.status_code == 404


def test_a_bundle_replaced_while_requests_flow_fails_no_request(
    tmp_path: Path, normal_wav: bytes
) -> None:
    small_audio_bundle(tmp_path / "fan-1", name="fan", version="1")
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def keep_scoring(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                response = http.post(
                    "/v1/models/fan/score",
                    content=normal_wav,
                    headers={"Content-Type": "audio/wav"},
                )
                version = response.json().get("version") if response.is_success else None
                results.append((response.status_code, version))

    with running_server(Settings(models_dir=tmp_path, reload_poll_seconds=0)) as live:
        clients = [threading.Thread(target=keep_scoring, args=(live.url,)) for _ in range(2)]
        for client in clients:
            client.start()
        time.sleep(0.3)
        _stage(tmp_path, "fan-2", name="fan", version="2")
        report = httpx.post(f"{live.url}/v1/models/reload", timeout=30).json()
        time.sleep(0.3)
        stop.set()
        for client in clients:
            client.join()
    assert [m["version"] for m in report["loaded"]] == ["2"]
    assert [(m["name"], m["version"]) for m in report["models"]] == [("fan", "2")]
    # One process: the answer names it as the one worker, reloaded.
    [worker] = report["workers"]
    assert (worker["reloaded"], worker["models"]) == (True, {"fan": "2"})
    assert report["all_workers_reloaded"] is True
    assert len(results) > 4
    assert {status for status, _ in results} == {200}
    assert {version for _, version in results} == {"1", "2"}
    assert results[-1][1] == "2"


def test_a_broken_bundle_is_refused_and_the_old_one_keeps_serving(
    tmp_path: Path, normal_wav: bytes
) -> None:
    small_audio_bundle(tmp_path / "fan-1", name="fan", version="1")
    with running_server(Settings(models_dir=tmp_path, reload_poll_seconds=0)) as live:
        write_broken_bundle(tmp_path / "fan-2", "model_not_onnx", name="fan", version="2")
        report = httpx.post(f"{live.url}/v1/models/reload", timeout=30).json()
        scored = httpx.post(
            f"{live.url}/v1/models/fan/score",
            content=normal_wav,
            headers={"Content-Type": "audio/wav"},
        )
        metrics = httpx.get(f"{live.url}/metrics").text
    assert report["loaded"] == []
    [refused] = report["refused"]
    assert refused["bundle"] == "fan-2"
    assert "ONNX Runtime cannot load model.onnx" in refused["error"]
    assert scored.status_code == 200
    assert scored.json()["version"] == "1"
    assert 'auscult_model_reloads_total{result="failure"} 1.0' in metrics
    assert 'auscult_model_info{kind="audio",model="fan",version="1"} 1.0' in metrics


def test_polling_picks_up_a_new_bundle_without_a_reload_request(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "fan-1", name="fan", version="1")
    settings = Settings(models_dir=tmp_path, reload_poll_seconds=0.1)
    with running_server(settings) as live:
        _stage(tmp_path, "fan-2", name="fan", version="2")
        deadline = time.monotonic() + 10
        version = None
        while time.monotonic() < deadline and version != "2":
            time.sleep(0.1)
            version = httpx.get(f"{live.url}/v1/models/fan").json()["version"]
    assert version == "2"


def test_a_reload_reaches_every_app_sharing_a_sync_folder(tmp_path: Path) -> None:
    models = tmp_path / "models"
    small_audio_bundle(models / "fan-1", name="fan", version="1")
    # Two apps stand in for two workers; neither polls, so only the reload can reach the second.
    settings = Settings(
        models_dir=models,
        reload_poll_seconds=0,
        worker_sync_dir=tmp_path / "sync",
        worker_sync_poll_seconds=0.05,
    )
    with running_server(settings) as first, running_server(settings) as second:
        _stage(models, "fan-2", name="fan", version="2")
        report = httpx.post(f"{first.url}/v1/models/reload", timeout=30).json()
        served_by_second = httpx.get(f"{second.url}/v1/models/fan").json()["version"]
    assert report["all_workers_reloaded"] is True
    assert [(w["reloaded"], w["models"]) for w in report["workers"]] == [(True, {"fan": "2"})] * 2
    assert served_by_second == "2"


def test_a_worker_still_loading_answers_503_not_404(tmp_path: Path) -> None:
    """A worker that has not finished loading the models folder (just started or restarted)
    says so, retryable, instead of "no such model"; once loaded, a missing model is a 404."""
    small_audio_bundle(tmp_path / "fan", name="fan")
    runtime = Runtime.start(
        Settings(models_dir=tmp_path, reload_poll_seconds=0, events_enabled=False), Metrics()
    )
    try:
        with pytest.raises(HTTPException) as loading:
            asyncio.run(get_model("fan", runtime))
        runtime.registry.refresh()
        assert asyncio.run(get_model("fan", runtime)).name == "fan"
        with pytest.raises(HTTPException) as missing:
            asyncio.run(get_model("pump", runtime))
    finally:
        runtime.pool.shutdown()
        runtime.stream_batcher.shutdown()
    assert loading.value.status_code == 503
    assert loading.value.headers == {"Retry-After": "1"}
    assert "still loading" in loading.value.detail
    assert missing.value.status_code == 404

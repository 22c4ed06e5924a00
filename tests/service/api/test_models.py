"""GET /v1/models, GET /v1/models/{name} and hot reloads (POST /v1/models/reload and polling),
with requests flowing while a bundle is replaced."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from service.api.deps import MODELS_LOADING
from service.bundle.manifest import MANIFEST_FILE, MODEL_FILE
from service.config import Settings
from tests.bundle_factory import write_broken_bundle
from tests.server import running_server
from tests.service.api.streams import read_to_close, stream_connection
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


def test_a_server_still_loading_its_models_says_so_on_every_protocol(
    tmp_path: Path, normal_wav: bytes
) -> None:
    """A worker that has not finished its first load of the models folder (just started or
    restarted, and reached like any other worker through its own socket) answers "still
    loading", retryable, on /v1, /v2 and streams, where a loaded one would say "no such model".
    The manifest is a named pipe, so the load waits until the test writes it."""
    small_audio_bundle(tmp_path / "staged", name="fan")
    bundle = tmp_path / "models" / "fan"
    bundle.mkdir(parents=True)
    shutil.copy(tmp_path / "staged" / MODEL_FILE, bundle / MODEL_FILE)
    os.mkfifo(bundle / MANIFEST_FILE)
    settings = Settings(models_dir=tmp_path / "models", reload_poll_seconds=0)
    with running_server(settings, wait_ready=False) as live:
        try:
            readiness = httpx.get(f"{live.url}/readyz").json()
            score = httpx.post(
                f"{live.url}/v1/models/fan/score",
                content=normal_wav,
                headers={"Content-Type": "audio/wav"},
            )
            v2 = httpx.get(f"{live.url}/v2/models/fan")

            async def stream() -> tuple[list[dict[str, Any]], int | None]:
                async with stream_connection(live, "fan") as ws:
                    return await read_to_close(ws)

            messages, close_code = asyncio.run(stream())
        finally:
            (bundle / MANIFEST_FILE).write_bytes((tmp_path / "staged" / MANIFEST_FILE).read_bytes())
        for _ in range(200):
            if httpx.get(f"{live.url}/readyz").json()["reason"] != "loading models":
                break
            time.sleep(0.05)
        loaded = httpx.get(f"{live.url}/v1/models/pump")
    assert readiness["reason"] == "loading models"
    assert score.status_code == 503
    assert score.headers["Retry-After"] == "1"
    assert score.json() == {"detail": MODELS_LOADING}
    assert v2.status_code == 503
    assert v2.json() == {"error": MODELS_LOADING}
    assert [m["code"] for m in messages] == ["models_loading"]
    assert close_code == 1013
    # Once the folder is read, a model it does not hold is "not served".
    assert loaded.status_code == 404

"""Probes and docs: /healthz is alive at once, /readyz only once a model is loaded and warm."""

from __future__ import annotations

from pathlib import Path

import httpx

from service.config import Settings
from tests.server import running_server
from tests.service.clips import small_audio_bundle


def test_ready_only_once_a_model_is_served(tmp_path: Path) -> None:
    settings = Settings(models_dir=tmp_path, reload_poll_seconds=0)
    with running_server(settings, wait_ready=False) as live:
        assert httpx.get(f"{live.url}/healthz").json() == {"status": "alive"}
        not_ready = httpx.get(f"{live.url}/readyz")
        small_audio_bundle(tmp_path / "fan", name="fan")
        httpx.post(f"{live.url}/v1/models/reload", timeout=30).raise_for_status()
        ready = httpx.get(f"{live.url}/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["status"] == "not ready"
    assert not_ready.json()["reason"] in (
        "loading models",
        f"no model could be loaded from {tmp_path}",
    )
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "reason": None, "models": 1}


def test_a_missing_models_folder_is_the_reason_given(tmp_path: Path) -> None:
    settings = Settings(models_dir=tmp_path / "absent", reload_poll_seconds=0)
    with running_server(settings, wait_ready=False) as live:
        for _ in range(100):
            body = httpx.get(f"{live.url}/readyz").json()
            if body["reason"] != "loading models":
                break
    assert "cannot read the models folder" in body["reason"]


def test_openapi_documents_every_route(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "fan", name="fan")
    with running_server(Settings(models_dir=tmp_path, reload_poll_seconds=0)) as live:
        docs = httpx.get(f"{live.url}/docs")
        schema = httpx.get(f"{live.url}/openapi.json").json()
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    assert set(schema["paths"]) == {
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/models",
        "/v1/models/reload",
        "/v1/models/{name}",
        "/v1/models/{name}/score",
        "/v1/models/{name}/windows",
    }
    body = schema["paths"]["/v1/models/{name}/score"]["post"]["requestBody"]["content"]
    assert {"audio/wav", "audio/flac", "multipart/form-data"} <= set(body)

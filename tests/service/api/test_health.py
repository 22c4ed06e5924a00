"""Probes and docs: /healthz is alive at once, /readyz only once a model is loaded and warm and
without naming paths; OpenAPI declares the key schemes; /docs and /redoc need no CDN."""

from __future__ import annotations

import re
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
        "no model could be loaded from the models folder",
    )
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "reason": None, "models": 1}


def test_a_missing_models_folder_is_the_reason_given(tmp_path: Path) -> None:
    settings = Settings(models_dir=tmp_path / "absent", reload_poll_seconds=0)
    with running_server(settings, wait_ready=False) as live:
        for _ in range(100):
            response = httpx.get(f"{live.url}/readyz")
            if response.json()["reason"] != "loading models":
                break
    # Anyone may ask /readyz: it names no folder (the log has the details).
    assert response.json()["reason"] == "cannot read the models folder"
    assert str(tmp_path) not in response.text


def test_openapi_documents_every_route_and_both_key_schemes(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "fan", name="fan")
    with running_server(Settings(models_dir=tmp_path, reload_poll_seconds=0)) as live:
        schema = httpx.get(f"{live.url}/openapi.json").json()
    assert set(schema["paths"]) == {
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/models",
        "/v1/models/reload",
        "/v1/models/{name}",
        "/v1/models/{name}/report",
        "/v1/models/{name}/report/{file_path}",
        "/v1/models/{name}/score",
        "/v1/models/{name}/windows",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/versions/{version}/infer",
        "/v1/events",
        "/v1/events/{event_id}",
        "/v1/events/{event_id}/audio",
        "/v1/events/{event_id}/label",
    }
    body = schema["paths"]["/v1/models/{name}/score"]["post"]["requestBody"]["content"]
    assert {"audio/wav", "audio/flac", "multipart/form-data"} <= set(body)
    assert schema["components"]["securitySchemes"] == {
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "an API key as `Authorization: Bearer <key>`",
        },
        "APIKeyHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "an API key as `X-API-Key: <key>`",
        },
        "APIKeyCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": "auscult_api_key",
            "description": "the API key the review page keeps after `/ui/review?api_key=<key>`",
        },
    }
    either_key = [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            keyed = path.startswith("/v1/") or (
                path.startswith("/v2") and not path.startswith("/v2/health/")
            )
            expected = either_key if keyed else None
            if path.startswith("/v1/events"):
                # The review page's requests carry the key in its cookie.
                expected = [*either_key, {"APIKeyCookie": []}]
            assert operation.get("security") == expected, path


def test_docs_and_redoc_load_everything_from_the_service(tmp_path: Path) -> None:
    with (
        running_server(
            Settings(models_dir=tmp_path, reload_poll_seconds=0), wait_ready=False
        ) as live,
        httpx.Client(base_url=live.url) as http,
    ):
        for page, marker in (("/docs", "SwaggerUIBundle"), ("/redoc", "<redoc")):
            html = http.get(page)
            assert html.status_code == 200
            assert marker in html.text
            # Air-gapped plants reach no CDN: every script, style and icon is local.
            assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
            assert assets
            for asset in assets:
                assert asset.startswith("/"), f"{page} loads {asset}"
                assert http.get(asset).status_code == 200, asset

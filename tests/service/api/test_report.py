"""GET /v1/models/{name}/report on a real uvicorn server: the page written by `auscult report`
loads in Chromium with every figure; the route asks for the API key like every /v1 route, says
404 with a JSON detail when there is no report, and never serves a file outside the report."""

from __future__ import annotations

import http.client
from pathlib import Path

import httpx
import pytest
import soundfile as sf
from pydantic import SecretStr

from service.config import Settings
from tests.bundle_factory import machine_sound
from tests.server import LiveServer, running_server
from tests.service.clips import small_audio_bundle
from tests.training.report.browser import assert_complete, show
from training.report.writer import write_report

KEY = "report-key-0123456789"
AUTH = {"X-API-Key": KEY}


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A models folder with 'fan' (a report with one clip's figures) and 'pump' (no report)."""
    folder = tmp_path / "models"
    fan = small_audio_bundle(folder / "fan", name="fan")
    small_audio_bundle(folder / "pump", name="pump")
    clip = tmp_path / "hum.wav"
    sf.write(clip, machine_sound(2.0, seed=3), 16000)
    write_report(fan, clip_file=clip)
    # Beside the report: a file outside it that must never be served through it.
    (tmp_path / "secret.png").write_bytes(b"not for clients")
    return folder


def _settings(models: Path) -> Settings:
    return Settings(models_dir=models, reload_poll_seconds=0, api_keys=[SecretStr(KEY)])


def _raw_get(live: LiveServer, path: str) -> int:
    """Status of GET `path` sent byte for byte: no client normalises '..' or %2F away."""
    connection = http.client.HTTPConnection(live.host, live.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.putheader("X-API-Key", KEY)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_the_report_loads_in_a_browser_with_every_figure(models: Path) -> None:
    with running_server(_settings(models)) as live:
        page = show(f"{live.url}/v1/models/fan/report", headers=AUTH)
    assert page.url == f"{live.url}/v1/models/fan/report/"
    assert_complete(page, {"bundle", "operating-points", "training", "clip"})
    assert {i.src for i in page.images} == {"clip_blocks.png", "clip_bands.png"}


def test_the_report_needs_the_key_and_says_when_there_is_none(models: Path) -> None:
    with running_server(_settings(models)) as live, httpx.Client(base_url=live.url) as http:
        for path in ("/v1/models/fan/report", "/v1/models/fan/report/clip_bands.png"):
            assert http.get(path).status_code == 401
        redirect = http.get("/v1/models/fan/report", headers=AUTH)
        index = http.get("/v1/models/fan/report/", headers=AUTH)
        image = http.get("/v1/models/fan/report/clip_bands.png", headers=AUTH)
        summary = http.get("/v1/models/fan/report/summary.json", headers=AUTH)
        absent = http.get("/v1/models/pump/report", headers=AUTH)
        absent_file = http.get("/v1/models/pump/report/index.html", headers=AUTH)
        unknown = http.get("/v1/models/drill/report", headers=AUTH)
    assert (redirect.status_code, redirect.headers["location"]) == (307, "report/")
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>fan version 1: audio bundle report</h1>" in index.text
    assert "script-src" not in index.headers["content-security-policy"]
    assert (image.headers["content-type"], image.content[:8]) == ("image/png", b"\x89PNG\r\n\x1a\n")
    assert summary.json()["name"] == "fan"
    for response in (absent, absent_file):
        assert response.status_code == 404
        assert "'pump' has no report" in response.json()["detail"]
    assert unknown.status_code == 404
    assert "no model named 'drill'" in unknown.json()["detail"]


def test_nothing_outside_the_report_is_served(models: Path, tmp_path: Path) -> None:
    report = models / "fan" / "report"
    (report / "model.png").symlink_to(models / "fan" / "model.onnx")
    (report / "secret.png").symlink_to(tmp_path / "secret.png")
    (report / "notes.txt").write_text("a kind of file a report does not hold")
    with running_server(_settings(models)) as live:
        assert _raw_get(live, "/v1/models/fan/report/clip_bands.png") == 200
        for path in (
            "/v1/models/fan/report/../manifest.json",
            "/v1/models/fan/report/..%2Fmanifest.json",
            "/v1/models/fan/report/%2e%2e/model.onnx",
            "/v1/models/fan/report/..%2F..%2Fpump%2Fmanifest.json",
            "/v1/models/fan/report/%2Fetc%2Fpasswd",
            "/v1/models/fan/report/model.png",
            "/v1/models/fan/report/secret.png",
            "/v1/models/fan/report/notes.txt",
            "/v1/models/fan/report/missing.png",
        ):
            assert _raw_get(live, path) == 404, path

"""AUSCULT_OPERATING_POINT and AUSCULT_MODEL_OPERATING_POINTS on a real server: the same clip
and series get the verdicts of the chosen operating point, and the answers say which."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.config import Settings
from tests.bundle_factory import make_windows_bundle, sensor_series
from tests.server import LiveServer, running_server
from tests.service.api.streams import start, stream_connection
from tests.service.clips import clip, small_audio_bundle
from tests.service.operating_points import with_operating_points


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    with_operating_points(small_audio_bundle(folder / "fan", name="fan"))
    press = make_windows_bundle(folder / "press", name="press", channels=4, window=20)
    with_operating_points(press)
    return folder


def _answers(settings: Settings) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A normal clip's verdict, a normal series' verdict, and the operating point an audio
    stream's ready message names."""

    async def ready(live: LiveServer) -> dict[str, Any]:
        async with stream_connection(live) as ws:
            answer: dict[str, Any] = await start(ws)
            return answer

    series = sensor_series(60, channels=4, seed=2).tolist()
    with running_server(settings) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        scored = http.post(
            "/v1/models/fan/score",
            content=clip(2.0, seed=11),
            headers={"Content-Type": "audio/wav"},
        )
        windows = http.post("/v1/models/press/windows", json=series)
        streamed = asyncio.run(ready(live))
    assert scored.status_code == windows.status_code == 200, (scored.text, windows.text)
    return scored.json(), windows.json(), streamed["operating_point"]


@pytest.mark.parametrize(
    ("every_model", "per_model", "point", "anomalous"),
    [
        (None, {}, "lenient", False),  # the bundle's default
        ("strict", {}, "strict", True),
        ("false_alarm_rate", {}, "strict", True),  # by rule
        ("percentile", {}, "lenient", False),  # not in these bundles: their default
        ("strict", {"fan": "lenient", "press": "lenient"}, "lenient", False),
        (None, {"fan": "strict", "press": "strict"}, "strict", True),
    ],
)
def test_the_chosen_operating_point_decides_the_same_input(
    models: Path, every_model: str | None, per_model: dict[str, str], point: str, anomalous: bool
) -> None:
    settings = Settings(
        models_dir=models,
        reload_poll_seconds=0,
        operating_point=every_model,
        model_operating_points=per_model,
    )
    scored, windows, streamed = _answers(settings)
    assert (scored["operating_point"], windows["operating_point"], streamed) == (point,) * 3
    assert scored["anomaly"] is anomalous
    assert all(block["anomaly"] is anomalous for block in scored["blocks"])
    assert scored["ratio"] == pytest.approx(scored["score"] / scored["threshold"])
    assert windows["anomaly"] is anomalous
    assert all(flag is anomalous for flag in windows["anomalies"])


def test_a_per_model_point_the_bundle_lacks_refuses_the_bundle(models: Path) -> None:
    settings = Settings(
        models_dir=models, reload_poll_seconds=0, model_operating_points={"fan": "percentile"}
    )
    with running_server(settings) as live:
        listing = httpx.get(f"{live.url}/v1/models", timeout=30).json()
    assert [m["name"] for m in listing["models"]] == ["press"]
    [refused] = listing["refused"]
    assert refused["bundle"] == "fan"
    assert "no operating point 'percentile'" in refused["error"]


def test_the_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUSCULT_OPERATING_POINT", "false_alarm_rate")
    monkeypatch.setenv("AUSCULT_MODEL_OPERATING_POINTS", '{"fan": "lenient"}')
    settings = Settings()
    assert (settings.operating_point, settings.model_operating_points) == (
        "false_alarm_rate",
        {"fan": "lenient"},
    )

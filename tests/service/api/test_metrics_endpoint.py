"""GET /metrics, parsed with prometheus_client's parser after real clip and stream traffic:
every metric of docs/ARCHITECTURE.md, with bounded labels."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from service.config import Settings
from tests.server import LiveServer, running_server
from tests.service.api.streams import read_to_close, start, stream_connection
from tests.service.clips import small_audio_bundle

# docs/ARCHITECTURE.md, "Metrics": name -> (type, label names)
ARCHITECTURE = {
    "auscult_http_requests": ("counter", {"route", "method", "status"}),
    "auscult_http_request_duration_seconds": ("histogram", {"route", "method"}),
    "auscult_stage_duration_seconds": ("histogram", {"stage"}),
    "auscult_scored": ("counter", {"model", "station", "source"}),
    "auscult_anomalies": ("counter", {"model", "station", "source"}),
    "auscult_score_ratio": ("histogram", {"model"}),
    "auscult_model_info": ("gauge", {"model", "version", "kind"}),
    "auscult_websocket_connections": ("gauge", set()),
    "auscult_websocket_frames_dropped": ("counter", {"model", "reason"}),
    "auscult_model_reloads": ("counter", {"result"}),
    "auscult_pool_rejections": ("counter", set()),
    "auscult_events_stored": ("counter", {"kind", "verdict"}),
    "auscult_events_dropped": ("counter", {"reason"}),
}


async def _one_stream(live: LiveServer) -> None:
    async with stream_connection(live) as ws:
        await start(ws, station="press-2")
        await ws.send(np.zeros(16000, dtype="<i2").tobytes())
        assert json.loads(await ws.recv())["type"] == "score"
        await ws.send(b"\x00")  # a ragged frame: dropped
        await read_to_close(ws)


def test_every_architecture_metric_is_exported_with_its_labels(
    tmp_path: Path, normal_wav: bytes, anomalous_wav: bytes
) -> None:
    small_audio_bundle(tmp_path / "fan", name="fan", version="4")
    settings = Settings(models_dir=tmp_path, reload_poll_seconds=0, stations=["press-1", "press-2"])
    with running_server(settings) as live, httpx.Client(base_url=live.url) as http:
        for wav, station in (
            (normal_wav, "press-1"),
            (anomalous_wav, "press-1"),
            (normal_wav, "x"),
        ):
            http.post(
                "/v1/models/fan/score",
                params={"station": station},
                content=wav,
                headers={"Content-Type": "audio/wav"},
            ).raise_for_status()
        http.post("/v1/models/fan/score", content=normal_wav, headers={"Content-Type": "audio/wav"})
        http.get("/v1/models/absent")
        http.get("/no/such/path")
        asyncio.run(_one_stream(live))
        text = http.get("/metrics").text

    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, (kind, labels) in ARCHITECTURE.items():
        assert name in families, name
        assert families[name].type == kind, name
        for sample in families[name].samples:
            assert set(sample.labels) - {"le"} == labels, sample

    def value(name: str, **labels: str) -> float:
        matches = [
            s.value
            for f in families.values()
            for s in f.samples
            if s.name == name and s.labels == labels
        ]
        assert len(matches) == 1, (name, labels)
        return matches[0]

    clip = {"model": "fan", "source": "clip"}
    assert value("auscult_scored_total", **clip, station="press-1") == 2
    assert value("auscult_anomalies_total", **clip, station="press-1") == 1
    assert value("auscult_scored_total", **clip, station="other") == 1
    assert value("auscult_scored_total", **clip, station="unknown") == 1
    stream = {"model": "fan", "source": "stream", "station": "press-2"}
    assert value("auscult_scored_total", **stream) > 0
    score_route = {"route": "/v1/models/{name}/score", "method": "POST"}
    assert value("auscult_http_requests_total", **score_route, status="200") == 4
    assert (
        value("auscult_http_requests_total", route="/v1/models/{name}", method="GET", status="404")
        == 1
    )
    assert value("auscult_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert value("auscult_http_request_duration_seconds_count", **score_route) == 4
    assert value("auscult_score_ratio_count", model="fan") >= 4
    assert value("auscult_model_info", model="fan", version="4", kind="audio") == 1
    assert value("auscult_model_reloads_total", result="success") == 1
    assert value("auscult_websocket_frames_dropped_total", model="fan", reason="bad_frame") == 1
    assert value("auscult_websocket_connections") == 0
    assert value("auscult_pool_rejections_total") == 0
    for stage in ("decode", "features", "model"):
        assert value("auscult_stage_duration_seconds_count", stage=stage) >= 5

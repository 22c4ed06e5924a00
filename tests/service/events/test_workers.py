"""Several worker processes of one `auscult serve` write to one event database (SQLite in WAL
mode, or PostgreSQL) and agree on it: every clip is an event whichever worker scored it, and a
label given through one worker is in the summed metrics."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.server import serve_process
from tests.service.clips import clip, small_audio_bundle

WAV = {"content-type": "audio/wav"}


@pytest.mark.slow
def test_two_workers_share_the_event_database(database_url: str, tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "models" / "fan", name="fan")
    env = {"AUSCULT_STATE_DIR": str(tmp_path / "state"), "AUSCULT_DATABASE_URL": database_url}
    clips = 12
    with serve_process(
        tmp_path / "models", tmp_path / "serve.log", args=["--workers", "2"], env=env
    ) as server:
        for seed in range(clips):
            # A new connection each time, so that both workers take some.
            response = httpx.post(
                f"{server.url}/v1/models/fan/score",
                content=clip(1.0, seed=seed, anomalous=True),
                headers=WAV,
            )
            assert response.status_code == 200
        deadline = time.monotonic() + 30
        while True:
            events = httpx.get(f"{server.url}/v1/events", params={"limit": 100}).json()["events"]
            if len(events) >= clips or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(events) == clips
        labelled = httpx.put(
            f"{server.url}/v1/events/{events[0]['id']}/label", json={"label": "anomaly"}
        )
        assert labelled.status_code == 200
        metrics = httpx.get(f"{server.url}/metrics").text
        assert f'auscult_events_stored_total{{kind="audio",verdict="anomaly"}} {float(clips)}' in (
            metrics
        )
        assert 'auscult_alarm_precision{model="fan"} 1.0' in metrics

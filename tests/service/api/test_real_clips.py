"""Real recordings through the real server: a DCASE 2020 WAV and a whole UAV flight in FLAC are
scored as clips and as streams, and the stream verdicts equal the clip's block verdicts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from service.config import Settings
from tests.realdata import real_data
from tests.server import LiveServer, running_server
from tests.service.api.streams import start, stream_connection
from tests.service.clips import small_audio_bundle

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    models = tmp_path_factory.mktemp("models")
    small_audio_bundle(models / "fan", name="fan")
    with running_server(Settings(models_dir=models, reload_poll_seconds=0)) as live:
        yield live


def _scored_until(messages: list[dict[str, Any]]) -> float:
    return float(messages[-1]["end_s"]) if messages else 0.0


async def _stream_file(live: LiveServer, path: Path) -> list[dict[str, Any]]:
    """Send the file in 250 ms frames, never more than 8 s ahead of the scores received (the
    per-connection buffer holds about 32 s of 16 kHz audio), as docs/API.md advises."""
    pcm, rate = sf.read(path, dtype="int16")
    frame = rate // 4
    messages: list[dict[str, Any]] = []
    async with stream_connection(live) as ws:
        assert (await start(ws, sample_rate=rate))["type"] == "ready"

        async def receive() -> None:
            async for text in ws:  # ends at a normal close, raises at any other
                messages.append(json.loads(text))

        receiver = asyncio.create_task(receive())
        for begin in range(0, pcm.size, frame):
            while begin / rate - _scored_until(messages) > 8.0:
                await asyncio.sleep(0.01)
            await ws.send(pcm[begin : begin + frame].astype("<i2").tobytes())
        await ws.send(json.dumps({"type": "stop"}))
        await receiver
    assert ws.close_code == 1000
    *scores, end = messages
    assert end["type"] == "end"
    return scores


@pytest.mark.parametrize(
    ("relative", "media_type"),
    [
        ("audio/dcase2020_dev/fan/test/anomaly_id_00_00000000.wav", "audio/wav"),
        ("audio/uav_propeller/3_4_broken/4_broken_1111_ccw_f8_1.flac", "audio/flac"),
    ],
)
def test_a_real_recording_scores_the_same_as_clip_and_as_stream(
    server: LiveServer, relative: str, media_type: str
) -> None:
    path = real_data(relative)
    response = httpx.post(
        f"{server.url}/v1/models/fan/score",
        content=path.read_bytes(),
        headers={"Content-Type": media_type},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    clip = response.json()
    assert clip["duration_s"] == pytest.approx(sf.info(path).duration)
    assert np.isfinite(clip["score"])
    scores = asyncio.run(_stream_file(server, path))
    blocks = clip["blocks"]
    assert [s["seq"] for s in scores] == [b["index"] for b in blocks]
    assert [s["anomaly"] for s in scores] == [b["anomaly"] for b in blocks]
    assert [s["score"] for s in scores] == pytest.approx([b["score"] for b in blocks], rel=1e-4)

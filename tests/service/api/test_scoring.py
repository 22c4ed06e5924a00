"""POST /v1/models/{name}/score on a real server: verdicts, blocks, band errors, and every way a
request can be refused."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from service.config import Settings
from tests.bundle_factory import make_windows_bundle
from tests.server import LiveServer, running_server
from tests.service.clips import SMALL_FEATURES, clip, encode, small_audio_bundle

MAX_CLIP_SECONDS = 20.0
MAX_BODY_BYTES = 1_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    models = tmp_path_factory.mktemp("models")
    small_audio_bundle(models / "fan-v3", name="fan", version="3")
    make_windows_bundle(models / "press", name="press", window=20)
    settings = Settings(
        models_dir=models,
        reload_poll_seconds=0,
        max_clip_seconds=MAX_CLIP_SECONDS,
        max_body_bytes=MAX_BODY_BYTES,
    )
    with running_server(settings) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


def _score(client: httpx.Client, body: bytes, media_type: str = "audio/wav") -> httpx.Response:
    return client.post("/v1/models/fan/score", content=body, headers={"Content-Type": media_type})


@pytest.mark.parametrize("media_type", ["audio/wav", "audio/x-wav", "audio/wave"])
def test_a_normal_wav_clip_is_normal(
    client: httpx.Client, normal_wav: bytes, media_type: str
) -> None:
    response = _score(client, normal_wav, media_type)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"]) == ("fan", "3")
    assert body["anomaly"] is False
    assert body["ratio"] == pytest.approx(body["score"] / body["threshold"])
    assert body["ratio"] < 1
    assert (body["duration_s"], body["sample_rate"], body["channels"]) == (3.0, 16000, 1)


def test_an_anomalous_clip_is_flagged_with_its_blocks_and_worst_bands(
    client: httpx.Client, anomalous_wav: bytes
) -> None:
    body = _score(client, anomalous_wav).json()
    assert body["anomaly"] is True
    assert body["ratio"] > 1
    blocks = body["blocks"]
    block_seconds = SMALL_FEATURES["frames_per_block"] * SMALL_FEATURES["hop_length"] / 16000
    assert [b["index"] for b in blocks] == list(range(len(blocks)))
    assert all(b["end_s"] - b["start_s"] == pytest.approx(block_seconds) for b in blocks)
    assert all(b["anomaly"] == (b["score"] > body["block_threshold"]) for b in blocks)
    assert np.mean([b["score"] for b in blocks]) == pytest.approx(body["score"], rel=1e-6)
    worst = body["worst_block"]
    assert worst["score"] == max(b["score"] for b in blocks)
    assert len(worst["band_error"]) == len(worst["band_hz"]) == SMALL_FEATURES["n_mels"]
    assert worst["band_hz"] == sorted(worst["band_hz"])


def test_blocks_false_leaves_out_the_blocks_and_nothing_else(
    client: httpx.Client, anomalous_wav: bytes
) -> None:
    full = _score(client, anomalous_wav).json()
    response = client.post(
        "/v1/models/fan/score",
        params={"blocks": "false"},
        content=anomalous_wav,
        headers={"Content-Type": "audio/wav"},
    )
    assert response.status_code == 200, response.text
    short = response.json()
    assert short["blocks"] is None
    assert len(full["blocks"]) > 1
    assert short == {**full, "blocks": None}


def test_flac_and_multipart_uploads_score_like_the_wav(
    client: httpx.Client, anomalous_wav: bytes
) -> None:
    # The very 16-bit samples of the WAV, losslessly in FLAC.
    pcm, _ = sf.read(io.BytesIO(anomalous_wav), dtype="int16")
    flac = encode(pcm, fmt="FLAC")
    wav_score = _score(client, anomalous_wav).json()["score"]
    assert _score(client, flac, "audio/flac").json()["score"] == pytest.approx(wav_score)
    response = client.post(
        "/v1/models/fan/score", files={"file": ("clip.flac", flac, "audio/flac")}
    )
    assert response.status_code == 200, response.text
    assert response.json()["score"] == pytest.approx(wav_score)


def test_a_clip_at_another_rate_is_resampled(client: httpx.Client) -> None:
    body = _score(client, clip(2.0, seed=13, rate=44100)).json()
    assert (body["sample_rate"], body["model_sample_rate"]) == (44100, 16000)
    assert body["duration_s"] == pytest.approx(2.0)
    assert body["blocks"]


@pytest.mark.parametrize(
    ("body", "media_type", "status", "message"),
    [
        (b"RIFF", "text/plain", 415, "unsupported content type 'text/plain'"),
        (b"RIFF", "", 415, "unsupported content type '(none)'"),
        (b"", "audio/wav", 422, "the clip is empty"),
        (b"this is not audio" * 10, "audio/wav", 422, "WAV or FLAC"),
        (encode(np.zeros(100, dtype=np.float32)), "audio/wav", 422, "the model needs at least"),
        (clip(25.0), "audio/wav", 422, f"the limit is {MAX_CLIP_SECONDS:g} s"),
        (  # its filter would have millions of taps (issue 10)
            clip(1.0, rate=191_999),
            "audio/wav",
            422,
            "sample rate 191999 Hz cannot be resampled to the model's 16000 Hz",
        ),
    ],
)
def test_bad_clips_are_refused_saying_why(
    client: httpx.Client, body: bytes, media_type: str, status: int, message: str
) -> None:
    response = _score(client, body, media_type)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_a_form_without_the_file_part_is_refused(client: httpx.Client) -> None:
    response = client.post("/v1/models/fan/score", files={"audio": ("a.wav", b"x", "audio/wav")})
    assert response.status_code == 422
    assert "no file part named 'file'" in response.json()["detail"]


def test_unknown_models_and_models_of_another_kind(client: httpx.Client, normal_wav: bytes) -> None:
    response = client.post(
        "/v1/models/pump/score", content=normal_wav, headers={"Content-Type": "audio/wav"}
    )
    assert response.status_code == 404
    assert "no model named 'pump'" in response.json()["detail"]
    response = client.post(
        "/v1/models/press/score", content=normal_wav, headers={"Content-Type": "audio/wav"}
    )
    assert response.status_code == 400
    assert "is a windows model" in response.json()["detail"]


def test_a_body_declared_too_large_is_refused_before_it_is_read(client: httpx.Client) -> None:
    response = _score(client, b"\x00" * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert f"limit of {MAX_BODY_BYTES} bytes" in response.json()["detail"]


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(client: httpx.Client) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(40):  # 2.6 MB in all, with no Content-Length
            sent += 65536
            yield b"\x00" * 65536

    response = client.post(
        "/v1/models/fan/score", content=chunks(), headers={"Content-Type": "audio/wav"}
    )
    assert response.status_code == 413
    assert "Content-Length" not in response.request.headers


def test_a_full_pool_answers_503_with_retry_after(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "fan", name="fan")
    settings = Settings(
        models_dir=tmp_path, reload_poll_seconds=0, worker_threads=1, pool_queue_limit=0
    )
    long_clip = clip(15.0, seed=21)

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60.0) as http:
            return await asyncio.gather(
                *(
                    http.post(
                        "/v1/models/fan/score",
                        content=long_clip,
                        headers={"Content-Type": "audio/wav"},
                    )
                    for _ in range(6)
                )
            )

    with running_server(settings) as live:
        responses = asyncio.run(burst(live.url))
        statuses = sorted(r.status_code for r in responses)
        assert statuses[0] == 200
        assert statuses[-1] == 503
        assert set(statuses) == {200, 503}
        for response in responses:
            if response.status_code == 503:
                assert response.headers["Retry-After"] == "1"
                assert "scoring slots are busy" in response.json()["detail"]
        metrics = httpx.get(live.url + "/metrics").text
        assert f"auscult_pool_rejections_total {float(statuses.count(503))}" in metrics

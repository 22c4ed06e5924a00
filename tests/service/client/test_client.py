"""`service.client` against a real server with real ONNX bundles: typed answers, audio streams
whose verdicts equal `/score` of the same audio (with a buffer small enough that an unpaced
client would overrun it), sensor streams whose scores equal `/windows`, and errors."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from service.client import (
    AsyncAuscultClient,
    AuscultClient,
    AuscultError,
    ClipVerdict,
    EventOut,
    EventQuery,
    ScoreMessage,
    SensorFileError,
    SensorSteps,
    StreamClosedError,
)
from tests.bundle_factory import machine_sound, sensor_series
from tests.server import LiveServer
from tests.service.clips import encode
from tests.service.served import fan_and_press, keyed_server

KEY = "client-test-key-0123456789"
CHANNELS = 3
# 16 s of f32 mono is 1 MB: an unpaced client overruns this buffer at once.
BUFFER_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fan_and_press(tmp_path_factory.mktemp("models"), CHANNELS)


@pytest.fixture(scope="module")
def server(models: Path) -> Iterator[LiveServer]:
    with keyed_server(models, KEY, ws_buffer_bytes=BUFFER_BYTES) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[AuscultClient]:
    with AuscultClient(server.url, api_key=KEY) as auscult:
        yield auscult


@pytest.fixture(scope="module")
def flight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 s of stereo FLAC at 22.05 kHz, anomalous in its second half: decoding mixes and
    resampling are exercised as well as the blocks."""
    rate = 22050
    normal = machine_sound(8.0, sample_rate=rate, seed=2)
    broken = machine_sound(8.0, sample_rate=rate, seed=3, anomalous=True)
    mono = np.concatenate([normal, broken])
    stereo = np.stack([mono, mono], axis=1)
    path = tmp_path_factory.mktemp("audio") / "flight.flac"
    path.write_bytes(encode(stereo, rate, fmt="FLAC", subtype="PCM_16"))
    return path


def _assert_same_blocks(streamed: list[ScoreMessage], verdict: ClipVerdict) -> None:
    """Block by block: index, times and verdict exactly; scores to float32 precision, as ONNX
    Runtime's sums differ in the last bits between batch sizes (a clip's blocks go in one batch,
    a stream's as they complete)."""
    assert verdict.blocks is not None
    assert [(m.seq, m.start_s, m.end_s, m.anomaly) for m in streamed] == [
        (b.index, b.start_s, b.end_s, b.anomaly) for b in verdict.blocks
    ]
    assert [m.score for m in streamed] == pytest.approx([b.score for b in verdict.blocks], rel=1e-5)


def _steps(messages: list[SensorSteps]) -> tuple[list[float], list[bool]]:
    scores: list[float] = []
    anomalies: list[bool] = []
    for message in messages:
        assert message.first_step == len(scores)
        scores += message.scores
        anomalies += message.anomalies
    return scores, anomalies


def test_models_are_listed_described_and_reloaded(client: AuscultClient) -> None:
    listing = client.list_models()
    assert [(m.name, m.kind) for m in listing.models] == [("fan", "audio"), ("press", "windows")]
    detail = client.model("press")
    assert (detail.status, detail.manifest["window"]) == ("serving", 20)
    report = client.reload()
    assert report.all_workers_reloaded
    assert [m.name for m in report.models] == ["fan", "press"]


def test_a_file_and_its_bytes_score_as_the_raw_api_answers(
    client: AuscultClient, server: LiveServer, flight: Path
) -> None:
    raw = httpx.post(
        f"{server.url}/v1/models/fan/score",
        params={"station": "bay-2"},
        content=flight.read_bytes(),
        headers={"Content-Type": "audio/flac", "X-API-Key": KEY},
        timeout=60,
    ).json()
    verdict = client.score_file("fan", flight, station="bay-2")
    assert verdict.model_dump(mode="json") == raw
    wav = encode(machine_sound(1.0, seed=4), 16000)
    assert client.score_bytes("fan", wav).sample_rate == 16000


def test_a_streamed_file_gets_the_verdicts_of_scoring_it(
    client: AuscultClient, flight: Path
) -> None:
    verdict = client.score_file("fan", flight)
    streamed = list(client.stream_audio("fan", flight))
    _assert_same_blocks(streamed, verdict)
    assert verdict.blocks is not None
    assert any(b.anomaly for b in verdict.blocks)
    assert not all(b.anomaly for b in verdict.blocks)


def test_live_pcm_frames_get_the_verdicts_of_the_same_audio_as_a_file(
    client: AuscultClient,
) -> None:
    samples = machine_sound(6.0, seed=7, anomalous=True)
    pcm = np.round(samples * 32767).astype(np.int16)
    verdict = client.score_bytes("fan", encode(pcm, 16000))
    frames = (pcm[i : i + 1000] for i in range(0, pcm.size, 1000))  # uneven 62.5 ms frames
    streamed = list(client.stream_audio("fan", frames, sample_rate=16000))
    _assert_same_blocks(streamed, verdict)


@pytest.mark.parametrize("rows_per_frame", [1, 7, 1000])
def test_sensor_rows_stream_to_the_scores_of_the_whole_series(
    client: AuscultClient, rows_per_frame: int
) -> None:
    series = sensor_series(120, channels=CHANNELS, seed=5, anomaly=(60, 80, 2))
    verdict = client.score_series("press", series)
    streamed = list(client.stream_sensors("press", series, rows_per_frame=rows_per_frame))
    assert _steps(streamed) == (verdict.scores, verdict.anomalies)
    assert verdict.anomaly


def test_named_columns_in_another_order(client: AuscultClient) -> None:
    series = sensor_series(60, channels=CHANNELS, seed=6)
    names = [f"sensor_{i}" for i in reversed(range(CHANNELS))]
    reordered = series[:, ::-1]
    expected = client.score_series("press", series)
    assert client.score_series("press", reordered, channels=names).scores == expected.scores
    streamed = list(client.stream_sensors("press", reordered, rows_per_frame=9, channels=names))
    assert _steps(streamed)[0] == expected.scores


def test_http_errors_raise_with_the_servers_detail(
    client: AuscultClient, server: LiveServer
) -> None:
    with pytest.raises(AuscultError) as missing:
        client.model("pump")
    assert missing.value.status_code == 404
    assert "no model named 'pump'" in missing.value.detail
    with pytest.raises(AuscultError) as short:
        client.score_series("press", [[1.0, 2.0, 3.0]])
    assert short.value.status_code == 422
    stranger = AuscultClient(server.url, api_key="wrong-key-0123456789")
    with stranger, pytest.raises(AuscultError) as refused:
        stranger.list_models()
    assert refused.value.status_code == 401


def test_stream_errors_raise_with_the_servers_code(client: AuscultClient) -> None:
    with pytest.raises(StreamClosedError) as unknown:
        list(client.stream_sensors("pump", [[0.0] * CHANNELS]))
    assert unknown.value.code == "unknown_model"
    assert "no model named 'pump'" in unknown.value.message
    with pytest.raises(StreamClosedError) as bad:
        list(client.stream_sensors("press", [[0.0, 1.0]]))
    assert bad.value.code == "bad_frame"
    with pytest.raises(StreamClosedError) as not_audio:
        list(client.stream_audio("press", [b"\0\0"], sample_rate=16000))
    assert not_audio.value.code in {"bad_start", "protocol"}


def test_async_streams_get_the_verdicts_of_scoring(server: LiveServer, flight: Path) -> None:
    async def live_rows() -> AsyncIterator[list[float]]:
        for row in sensor_series(90, channels=CHANNELS, seed=8).tolist():
            await asyncio.sleep(0)
            yield row

    async def run() -> None:
        async with AsyncAuscultClient(server.url, api_key=KEY) as auscult:
            verdict = await auscult.score_file("fan", flight)
            streamed = [m async for m in auscult.stream_audio("fan", flight)]
            _assert_same_blocks(streamed, verdict)
            rows = [row async for row in live_rows()]
            series = await auscult.score_series("press", rows)
            steps = [
                s async for s in auscult.stream_sensors("press", live_rows(), rows_per_frame=4)
            ]
            assert _steps(steps) == (series.scores, series.anomalies)
            assert [m.name for m in (await auscult.list_models()).models] == ["fan", "press"]

    asyncio.run(run())


def test_async_live_audio_frames(server: LiveServer) -> None:
    samples = machine_sound(4.0, seed=9)

    async def microphone() -> AsyncIterator[np.ndarray]:
        for start in range(0, samples.size, 1600):
            await asyncio.sleep(0)
            yield samples[start : start + 1600]

    async def run() -> None:
        async with AsyncAuscultClient(server.url, api_key=KEY) as auscult:
            verdict = await auscult.score_bytes("fan", encode(samples, 16000, subtype="FLOAT"))
            streamed = [
                m
                async for m in auscult.stream_audio(
                    "fan", microphone(), sample_rate=16000, encoding="f32le"
                )
            ]
            _assert_same_blocks(streamed, verdict)

    asyncio.run(run())


def _write_csv(path: Path, series: np.ndarray, names: list[str], *, label: bool) -> Path:
    """The layout of `auscult train windows --format csv`: timestamp, channels, label."""
    header = ["timestamp", *names, *(["label"] if label else [])]
    lines = [",".join(header)]
    for step, row in enumerate(series):
        cells = [f"2026-12-01T00:00:{step:05d}", *(repr(float(v)) for v in row)]
        lines.append(",".join([*cells, *(["0"] if label else [])]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_sensor_csv_file_scores_and_streams_as_its_rows(
    client: AuscultClient, server: LiveServer, tmp_path: Path
) -> None:
    """The header names the columns (here in reverse order, with a label column that is not
    sent), so the file's verdicts are those of the rows in the model's order."""
    series = sensor_series(100, channels=CHANNELS, seed=10, anomaly=(50, 70, 1))
    names = [f"sensor_{i}" for i in reversed(range(CHANNELS))]
    path = _write_csv(tmp_path / "press.csv", series[:, ::-1], names, label=True)
    expected = client.score_series("press", series)
    assert client.score_series("press", path).scores == expected.scores
    streamed = list(client.stream_sensors("press", str(path), rows_per_frame=16))
    assert _steps(streamed) == (expected.scores, expected.anomalies)

    async def run() -> list[SensorSteps]:
        async with AsyncAuscultClient(server.url, api_key=KEY) as auscult:
            assert (await auscult.score_series("press", path)).scores == expected.scores
            return [s async for s in auscult.stream_sensors("press", path, rows_per_frame=16)]

    assert _steps(asyncio.run(run())) == (expected.scores, expected.anomalies)


def test_gaps_repeat_the_previous_reading_and_semicolons_separate(
    client: AuscultClient, tmp_path: Path
) -> None:
    series = sensor_series(60, channels=CHANNELS, seed=14)
    lines = ["time;" + ";".join(f"sensor_{i}" for i in range(CHANNELS))]
    for step, row in enumerate(series):
        cells = [repr(float(v)) for v in row]
        if step == 30:
            cells[1] = ""  # a missed reading
            series[30, 1] = series[29, 1]
        lines.append(";".join([str(step), *cells]))
    path = tmp_path / "gaps.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert client.score_series("press", path).scores == client.score_series("press", series).scores


def test_a_sensor_csv_file_that_is_not_one(client: AuscultClient, tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text("timestamp,a,b,c\n0,1.0,x,3.0\n", encoding="utf-8")
    with pytest.raises(SensorFileError, match=r"broken\.csv, line 2: 'x' is not a number"):
        client.score_series("press", broken)
    leading_gap = tmp_path / "gap.csv"
    leading_gap.write_text("timestamp,a,b,c\n0,1.0,,3.0\n", encoding="utf-8")
    with pytest.raises(SensorFileError, match="line 2: an empty cell before any reading"):
        client.score_series("press", leading_gap)
    lonely = tmp_path / "lonely.csv"
    lonely.write_text("timestamp\n0\n", encoding="utf-8")
    with pytest.raises(SensorFileError, match="at least one channel"):
        list(client.stream_sensors("press", lonely))


def test_live_generators_are_sent_as_they_yield(client: AuscultClient) -> None:
    """Verdicts come back while the source is still producing: nothing waits for its end."""
    series = sensor_series(200, channels=CHANNELS, seed=12)
    yielded = 0

    def sensor_gateway() -> Iterator[np.ndarray]:
        nonlocal yielded
        for row in series:
            yielded += 1
            yield row

    first = next(iter(client.stream_sensors("press", sensor_gateway())))
    assert first.scores
    assert yielded < len(series)

    samples = machine_sound(8.0, seed=13)
    pcm = np.round(samples * 32767).astype(np.int16)
    frames_sent = 0

    def microphone() -> Iterator[np.ndarray]:
        nonlocal frames_sent
        for start in range(0, pcm.size, 1600):
            frames_sent += 1
            yield pcm[start : start + 1600]

    stream = client.stream_audio("fan", microphone(), sample_rate=16000)
    assert next(stream).seq == 0
    assert frames_sent < pcm.size // 1600
    stream.close()  # type: ignore[attr-defined]


def _events_once_written(auscult: AuscultClient, expected: int) -> list[EventOut]:
    """The store's writer batches events off the request path: wait until all are listed."""
    deadline = time.monotonic() + 30
    while len(events := list(auscult.iter_events(EventQuery(model="fan")))) < expected:
        assert time.monotonic() < deadline, f"{len(events)} of {expected} events written"
        time.sleep(0.1)
    return events


def test_events_are_listed_played_and_labelled(models: Path, tmp_path: Path) -> None:
    with (
        keyed_server(models, KEY, state_dir=tmp_path / "state") as live,
        AuscultClient(live.url, api_key=KEY) as auscult,
    ):
        normal = auscult.score_bytes("fan", encode(machine_sound(2.0, seed=3), 16000))
        alarm = auscult.score_bytes(
            "fan", encode(machine_sound(2.0, seed=4, anomalous=True), 16000), station="line-1"
        )
        assert (normal.anomaly, alarm.anomaly) == (False, True)
        assert len(_events_once_written(auscult, 2)) == 2

        (event,) = auscult.events(EventQuery(verdict="anomaly")).events
        assert event.station == "line-1"
        assert event.score == pytest.approx(alarm.score)
        detail = auscult.event(event.id)
        assert len(detail.detail["blocks"]) == len(alarm.blocks or [])
        played, rate = sf.read(io.BytesIO(auscult.event_audio(event.id)))
        assert len(played) / rate == pytest.approx(alarm.duration_s, abs=0.01)

        labelled = auscult.label_event(event.id, "anomaly", note="bearing noise", by="ana")
        assert (labelled.label, labelled.labelled_by, labelled.label_note) == (
            "anomaly",
            "ana",
            "bearing noise",
        )
        assert [e.id for e in auscult.events(EventQuery(label="anomaly")).events] == [event.id]
        assert event.id not in {e.id for e in auscult.events(EventQuery(label="none")).events}
        # Pages follow each other: one event a page still lists both, newest first.
        first = auscult.events(limit=1)
        assert first.next_cursor is not None
        second = auscult.events(limit=1, cursor=first.next_cursor)
        assert [first.events[0].id, second.events[0].id] == [e.id for e in auscult.iter_events()]
        paged = [e.id for e in auscult.iter_events(page_size=1)]
        assert paged == [first.events[0].id, second.events[0].id]
        with pytest.raises(AuscultError) as missing:
            auscult.event("0" * 32)
        assert missing.value.status_code == 404
        with pytest.raises(ValueError, match="not an event id"):
            auscult.label_event("../models/reload", "normal")

        async def listed_async() -> list[str]:
            async with AsyncAuscultClient(live.url, api_key=KEY) as client:
                relabelled = await client.label_event(event.id, "normal", by="ben")
                assert relabelled.label == "normal"
                return [
                    e.id async for e in client.iter_events(EventQuery(model="fan"), page_size=1)
                ]

        assert asyncio.run(listed_async()) == [e.id for e in auscult.iter_events()]
        assert auscult.event(event.id).label == "normal"

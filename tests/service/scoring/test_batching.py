"""The stream batcher: the windows and blocks of many streams turned into frames and scored in
shared calls give each stream the verdicts it gets alone, and one stream's failure stays its
own."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import numpy as np
import pytest

from service.bundle.loader import load_bundle
from service.metrics import Metrics
from service.pipelines.audio_stream import AudioStream, StreamFrameError
from service.scoring.audio import AudioScorer
from service.scoring.batching import FeatureWork, ModelWork, StreamBatcher
from service.scoring.detectors import AudioDetector, BlockVerdict, OperatingPointChoice
from tests.bundle_factory import machine_sound
from tests.service.clips import small_audio_bundle
from tests.service.priorities import linux_only, lowered, priority_of

STREAMS = 40
FRAME_SAMPLES = 1600  # 100 ms at 16 kHz


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> AudioDetector:
    folder: Path = small_audio_bundle(tmp_path_factory.mktemp("models") / "fan", name="fan")
    return AudioDetector.at(AudioScorer(load_bundle(folder)), OperatingPointChoice())


def _open(detector: AudioDetector) -> AudioStream:
    return AudioStream(
        detector,
        sample_rate=16000,
        encoding="pcm_s16le",
        channels=1,
        min_rate=8000,
        max_rate=48000,
        max_resample_factor=1000,
        metrics=Metrics(),
    )


def _audio(seed: int) -> bytes:
    """1.5 s of sound, anomalous for odd seeds: streams whose scores differ."""
    samples = machine_sound(1.5, seed=seed, anomalous=seed % 2 == 1)
    pcm: bytes = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    return pcm


def _frames(pcm: bytes) -> list[bytes]:
    size = 2 * FRAME_SAMPLES
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def _work(stream: AudioStream, frame: bytes | None) -> FeatureWork[list[BlockVerdict]]:
    """One frame's job as the stream protocol makes it: windows, then frames, then blocks."""
    windows = stream.windows_of(frame) if frame is not None else stream.final_windows()

    def blocks(frames: np.ndarray) -> ModelWork[list[BlockVerdict]]:
        batch = stream.blocks_of_frames(frames)
        return ModelWork(stream.scorer, batch.blocks, lambda s, b: stream.verdicts(batch, s, b))

    return FeatureWork(stream.extractor, windows, blocks)


def _alone(detector: AudioDetector, pcm: bytes) -> list[BlockVerdict]:
    stream = _open(detector)
    verdicts = [v for frame in _frames(pcm) for v in stream.push(frame)]
    return verdicts + stream.finish()


async def _batched(
    batcher: StreamBatcher, detector: AudioDetector, pcm: bytes
) -> list[BlockVerdict]:
    stream = _open(detector)
    verdicts: list[BlockVerdict] = []
    for frame in [*_frames(pcm), None]:
        got: list[BlockVerdict] = await batcher.run(functools.partial(_work, stream, frame))
        verdicts += got
    return verdicts


def test_streams_scored_together_get_the_verdicts_they_get_alone(detector: AudioDetector) -> None:
    audio = [_audio(seed) for seed in range(STREAMS)]
    batcher = StreamBatcher(1)

    async def together() -> list[list[BlockVerdict]]:
        return await asyncio.gather(*(_batched(batcher, detector, pcm) for pcm in audio))

    try:
        batched = asyncio.run(together())
    finally:
        batcher.shutdown()
    for pcm, verdicts in zip(audio, batched, strict=True):
        alone = _alone(detector, pcm)
        assert [v.index for v in verdicts] == [v.index for v in alone]
        assert [v.anomaly for v in verdicts] == [v.anomaly for v in alone]
        assert [v.score for v in verdicts] == pytest.approx([v.score for v in alone], rel=1e-5)
        # Each block keeps its own band errors (alarms name their worst bands from them).
        for mine, own in zip(verdicts, alone, strict=True):
            assert mine.band_error is not None
            assert own.band_error is not None
            np.testing.assert_allclose(mine.band_error, own.band_error, rtol=1e-4, atol=1e-6)
    # The streams really shared batches and model calls: far fewer than one per frame.
    frames = sum(len(_frames(pcm)) + 1 for pcm in audio)
    assert batcher.jobs == frames
    assert batcher.largest_batch > STREAMS // 2
    assert batcher.model_calls < frames / 4
    # Odd and even seeds differ: a batch that handed one stream another's scores would fail.
    assert len({v.anomaly for verdicts in batched for v in verdicts}) == 2


def test_a_failing_stream_fails_alone(detector: AudioDetector) -> None:
    batcher = StreamBatcher(1)
    good, bad = _open(detector), _open(detector)
    pcm = _frames(_audio(2))[0]

    async def both() -> tuple[list[BlockVerdict] | BaseException, ...]:
        return await asyncio.gather(
            batcher.run(lambda: _work(good, pcm)),
            batcher.run(lambda: _work(bad, pcm[:-1])),  # half a sample: a ragged frame
            return_exceptions=True,
        )

    try:
        first, second = asyncio.run(both())
    finally:
        batcher.shutdown()
    assert isinstance(first, list)
    assert isinstance(second, StreamFrameError)


@linux_only
def test_the_batch_threads_run_nice_below_the_event_loop() -> None:
    base = priority_of()
    batcher = StreamBatcher(1, nice=6)
    try:
        seen = asyncio.run(batcher.run(lambda: ModelWork.done(priority_of())))
    finally:
        batcher.shutdown()
    assert seen == lowered(base, 6)
    assert priority_of() == base

"""LogMelExtractor against librosa (generated and real clips), its blocks and their times, and
the streaming classes against the whole-clip results."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest

from service.audio.decode import decode_audio
from service.bundle.manifest import LogMelSettings
from service.features.logmel import (
    AudioTooShortError,
    LogMelExtractor,
    StreamingBlocker,
    StreamingLogMel,
    mel_band_centres_hz,
    mel_filterbank,
)
from tests.bundle_factory import machine_sound
from tests.realdata import real_data

DEFAULT = LogMelSettings(sample_rate=16000)
SETTINGS = {
    "default": DEFAULT,
    "short window": LogMelSettings(sample_rate=16000, win_length=1200, hop_length=256),
    "odd n_fft": LogMelSettings(sample_rate=16000, n_fft=1023, win_length=1023, hop_length=300),
    "band-limited": LogMelSettings(
        sample_rate=22050, n_fft=1024, win_length=1024, n_mels=64, fmin=50.0, fmax=8000.0
    ),
    "magnitude, ref, amin": LogMelSettings(
        sample_rate=8000, n_mels=40, power=1.0, amin=1e-5, ref=0.1
    ),
    "not centred": LogMelSettings(sample_rate=16000, center=False),
}


def _librosa_log_mel(y: np.ndarray, s: LogMelSettings) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=y,
        sr=s.sample_rate,
        n_fft=s.n_fft,
        win_length=s.win_length,
        hop_length=s.hop_length,
        n_mels=s.n_mels,
        fmin=s.fmin,
        fmax=s.fmax,
        power=s.power,
        center=s.center,
        pad_mode="constant",
        htk=False,
        norm="slaney",
    )
    return np.asarray(librosa.power_to_db(mel, ref=s.ref, amin=s.amin, top_db=None))


def _generated_clips(rate: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    n = int(2.3 * rate) + 77  # not a whole number of hops
    t = np.arange(n) / rate
    click = np.zeros(n)
    click[n // 2 : n // 2 + 40] = 0.9
    return {
        "machine": machine_sound(n / rate, sample_rate=rate, seed=1),
        "noise": 0.3 * rng.standard_normal(n),
        # a pure tone leaves most bands nearly empty: the hardest case for rounding
        "tone": 0.5 * np.sin(2 * np.pi * 440 * t),
        "chirp": 0.5 * np.sin(2 * np.pi * (100 + 0.2 * rate * t / t[-1]) * t),
        "click in silence": click,
    }


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_filterbank_is_librosas(settings: LogMelSettings) -> None:
    expected = librosa.filters.mel(
        sr=settings.sample_rate,
        n_fft=settings.n_fft,
        n_mels=settings.n_mels,
        fmin=settings.fmin,
        fmax=settings.fmax,
        htk=False,
        norm="slaney",
    )
    got = mel_filterbank(settings)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_band_centres_are_librosas(settings: LogMelSettings) -> None:
    fmax = settings.fmax if settings.fmax is not None else settings.sample_rate / 2
    edges = librosa.mel_frequencies(
        n_mels=settings.n_mels + 2, fmin=settings.fmin, fmax=fmax, htk=False
    )
    got = mel_band_centres_hz(settings)
    assert got.shape == (settings.n_mels,)
    np.testing.assert_allclose(got, edges[1:-1], rtol=1e-12)
    # each band's triangle peaks at the FFT bin nearest its centre, or next to it
    bin_hz = settings.sample_rate / settings.n_fft
    peaks = np.argmax(mel_filterbank(settings), axis=1) * bin_hz
    assert np.all(np.abs(peaks - got) <= bin_hz)


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_log_mel_agrees_with_librosa_on_generated_clips(settings: LogMelSettings) -> None:
    extractor = LogMelExtractor(settings)
    for name, clip in _generated_clips(settings.sample_rate).items():
        y = clip.astype(np.float32)
        expected = _librosa_log_mel(y, settings)
        got = extractor.log_mel(y)
        assert got.dtype == np.float32
        assert got.shape == expected.shape, name
        assert extractor.n_frames(y.size) == expected.shape[1]
        assert np.abs(got - expected).max() <= 1e-3, name


def _real_clips() -> list[Path]:
    dcase = real_data("audio/dcase2020_dev")
    return [
        *(
            sorted((dcase / machine / "test").glob("*.wav"))[0]
            for machine in ("fan", "ToyCar", "valve")
        ),
        real_data("audio/mimii_fan_id00") / "abnormal" / "00000000.wav",
        sorted((real_data("audio/uav_propeller") / "2_broken").glob("*.flac"))[0],
    ]


def test_log_mel_agrees_with_librosa_on_real_clips() -> None:
    extractor = LogMelExtractor(DEFAULT)
    for path in _real_clips():
        decoded = decode_audio(path)
        assert decoded.sample_rate == DEFAULT.sample_rate
        expected = _librosa_log_mel(decoded.samples, DEFAULT)
        got = extractor.log_mel(decoded.samples)
        assert got.shape == expected.shape, path.name
        assert np.abs(got - expected).max() <= 1e-3, path.name


def test_blocks_are_frame_slices_flattened_in_c_order() -> None:
    extractor = LogMelExtractor(DEFAULT)
    log_mel = extractor.log_mel(machine_sound(3.3, seed=2))
    n_frames = log_mel.shape[1]
    assert n_frames == 1 + int(3.3 * 16000) // 512
    blocks = extractor.blocks(log_mel)
    assert blocks.dtype == np.float32
    assert blocks.shape == (n_frames // 32, 128 * 32)
    for i, block in enumerate(blocks):
        np.testing.assert_array_equal(block, log_mel[:, 32 * i : 32 * (i + 1)].ravel())
        np.testing.assert_array_equal(block.reshape(128, 32), log_mel[:, 32 * i : 32 * i + 32])
    overlapping = extractor.blocks(log_mel, hop_frames=8)
    assert overlapping.shape[0] == (n_frames - 32) // 8 + 1
    np.testing.assert_array_equal(overlapping[3], log_mel[:, 24:56].ravel())


def test_blocks_follow_the_settings_hop() -> None:
    settings = LogMelSettings(sample_rate=16000, frames_per_block=5, block_hop_frames=1, n_mels=64)
    extractor = LogMelExtractor(settings)
    log_mel = extractor.log_mel(machine_sound(1.0, seed=2))
    blocks = extractor.blocks(log_mel)
    assert blocks.shape == (log_mel.shape[1] - 4, 64 * 5)
    np.testing.assert_array_equal(blocks[7], log_mel[:, 7:12].ravel())


def test_too_few_frames_give_no_blocks_and_bad_shapes_are_refused() -> None:
    extractor = LogMelExtractor(DEFAULT)
    assert extractor.blocks(np.zeros((128, 31), dtype=np.float32)).shape == (0, 4096)
    with pytest.raises(ValueError, match=r"n_mels=128"):
        extractor.blocks(np.zeros((64, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="hop_frames must be at least 1"):
        extractor.blocks(np.zeros((128, 100), dtype=np.float32), hop_frames=0)
    with pytest.raises(ValueError, match="1-D"):
        extractor.log_mel(np.zeros((2, 16000), dtype=np.float32))


def test_block_times_tile_the_clip() -> None:
    extractor = LogMelExtractor(DEFAULT)
    start, end = extractor.block_times(3)
    block = 32 * 512 / 16000
    np.testing.assert_allclose(start, [0.0, block, 2 * block])
    np.testing.assert_allclose(end, [block, 2 * block, 3 * block])
    start, end = extractor.block_times(2, hop_frames=8)
    np.testing.assert_allclose(start, [0.0, 8 * 512 / 16000])
    np.testing.assert_allclose(end - start, [block, block])


def test_clip_blocks_needs_one_complete_block() -> None:
    extractor = LogMelExtractor(DEFAULT)
    assert extractor.min_samples == 31 * 512
    assert extractor.clip_blocks(machine_sound(extractor.min_samples / 16000)).shape == (1, 4096)
    with pytest.raises(AudioTooShortError) as caught:
        extractor.clip_blocks(np.zeros(extractor.min_samples - 1, dtype=np.float32))
    assert str(caught.value) == (
        "clip is 0.99 s long (15871 samples at 16000 Hz); "
        "the model needs at least 0.99 s (15872 samples)"
    )
    with pytest.raises(AudioTooShortError, match=r"clip is 0\.30 s long .* at least 0\.99 s"):
        extractor.clip_blocks(np.zeros(4800, dtype=np.float32))
    assert isinstance(caught.value, ValueError)


def _random_pieces(samples: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Split into pieces from 0 samples to several n_fft long, with a few single samples."""
    cuts = np.sort(rng.integers(0, samples.size, size=40))
    cuts = np.concatenate([cuts, cuts[:5] + 1, [0, 0, samples.size]])
    return np.split(samples, np.sort(np.clip(cuts, 0, samples.size)))


@pytest.mark.parametrize(
    "settings",
    [SETTINGS[name] for name in ("default", "odd n_fft", "not centred")],
    ids=["default", "odd n_fft", "not centred"],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_gives_the_frames_of_the_whole_clip(settings: LogMelSettings, seed: int) -> None:
    clip = machine_sound(4.1, sample_rate=settings.sample_rate, seed=seed, anomalous=True)
    whole = LogMelExtractor(settings).log_mel(clip)
    stream = StreamingLogMel(settings)
    pieces = [stream.push(piece) for piece in _random_pieces(clip, np.random.default_rng(seed))]
    pieces.append(stream.finish())
    streamed = np.concatenate(pieces, axis=1)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, rtol=1e-6, atol=1e-5)


def test_streaming_holds_less_than_one_window() -> None:
    stream = StreamingLogMel(DEFAULT)
    clip = machine_sound(30.0, seed=4)
    n_frames = 0
    for piece in np.array_split(clip, 300):
        n_frames += stream.push(piece).shape[1]
        assert stream.buffered_samples < DEFAULT.n_fft
    n_frames += stream.finish().shape[1]
    assert n_frames == LogMelExtractor(DEFAULT).n_frames(clip.size)
    with pytest.raises(RuntimeError, match="finished"):
        stream.push(clip[:10])


@pytest.mark.parametrize("hop_frames", [32, 8, 45])
def test_streaming_blocker_matches_the_whole_clip(hop_frames: int) -> None:
    extractor = LogMelExtractor(DEFAULT)
    log_mel = extractor.log_mel(machine_sound(7.0, seed=5))
    expected = extractor.blocks(log_mel, hop_frames)
    start, end = extractor.block_times(expected.shape[0], hop_frames)

    blocker = StreamingBlocker(DEFAULT, hop_frames)
    rng = np.random.default_rng(hop_frames)
    cuts = np.sort(rng.integers(0, log_mel.shape[1], size=25))
    batches = [blocker.push(part) for part in np.split(log_mel, cuts, axis=1)]
    assert sum(len(batch) for batch in batches) == expected.shape[0]
    np.testing.assert_array_equal(np.concatenate([b.blocks for b in batches]), expected)
    np.testing.assert_array_equal(
        np.concatenate([b.index for b in batches]), np.arange(expected.shape[0])
    )
    np.testing.assert_allclose(np.concatenate([b.start_s for b in batches]), start)
    np.testing.assert_allclose(np.concatenate([b.end_s for b in batches]), end)


def test_streaming_end_to_end_gives_the_clips_blocks() -> None:
    """Samples -> StreamingLogMel -> StreamingBlocker equals clip_blocks of the whole clip."""
    clip = machine_sound(5.0, seed=6)
    stream = StreamingLogMel(DEFAULT)
    blocker = StreamingBlocker(DEFAULT)
    batches = [blocker.push(stream.push(piece)) for piece in np.array_split(clip, 37)]
    batches.append(blocker.push(stream.finish()))
    streamed = np.concatenate([batch.blocks for batch in batches])
    np.testing.assert_allclose(
        streamed, LogMelExtractor(DEFAULT).clip_blocks(clip), rtol=1e-6, atol=1e-5
    )


def test_streaming_blocker_refuses_frames_of_the_wrong_height() -> None:
    with pytest.raises(ValueError, match=r"n_mels=128"):
        StreamingBlocker(DEFAULT).push(np.zeros((64, 10), dtype=np.float32))

"""decode_audio and load_audio on real WAV and FLAC files in every supported layout, and the
clear refusals of everything else."""

from __future__ import annotations

import contextlib
import io
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from service.audio.decode import AudioDecodeError, DecodeLimits, decode_audio, load_audio
from service.config import Settings
from tests.realdata import real_data
from tests.service.clips import RATE, encode


def _tone(seconds: float = 0.5, channels: int = 1, rate: int = RATE) -> np.ndarray:
    """Float64 (frames, channels): a different tone on each channel, within [-0.5, 0.5]."""
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * 220 * (c + 1) * t) for c in range(channels)], 1)


# Largest decoding error each subtype's quantisation allows on [-1, 1] samples.
LAYOUTS = [
    ("WAV", "PCM_U8", 1 / 64),
    ("WAV", "PCM_16", 1e-4),
    ("WAV", "PCM_24", 1e-6),
    ("WAV", "PCM_32", 1e-7),
    ("WAV", "FLOAT", 1e-7),
    ("WAV", "DOUBLE", 1e-7),
    ("WAVEX", "PCM_16", 1e-4),
    ("WAVEX", "FLOAT", 1e-7),
    ("FLAC", "PCM_16", 1e-4),
    ("FLAC", "PCM_24", 1e-6),
]


@pytest.mark.parametrize(("fmt", "subtype", "tolerance"), LAYOUTS)
@pytest.mark.parametrize("channels", [1, 3])
def test_decodes_every_supported_layout(
    fmt: str, subtype: str, tolerance: float, channels: int
) -> None:
    frames = _tone(channels=channels)
    decoded = decode_audio(encode(frames, fmt=fmt, subtype=subtype))
    assert decoded.sample_rate == RATE
    assert decoded.channels == channels
    assert decoded.samples.dtype == np.float32
    assert decoded.samples.shape == (frames.shape[0],)
    assert decoded.duration_s == pytest.approx(0.5)
    np.testing.assert_allclose(decoded.samples, frames.mean(axis=1), atol=tolerance)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
@pytest.mark.parametrize("channels", [1, 2])
def test_16_bit_pcm_decodes_to_exactly_libsndfiles_floats(fmt: str, channels: int) -> None:
    # Read as integers and scaled by the service: training decoded the same files through
    # libsndfile's float conversion, so the features must not move by a bit.
    rng = np.random.default_rng(0)
    pcm = rng.integers(-32768, 32768, size=(4000, channels), dtype=np.int16)
    pcm[:2] = [[-32768], [32767]]
    buffer = io.BytesIO()
    sf.write(buffer, pcm, RATE, format=fmt, subtype="PCM_16")
    with sf.SoundFile(io.BytesIO(buffer.getvalue())) as audio:
        reference = audio.read(dtype="float32", always_2d=True)
    decoded = decode_audio(buffer.getvalue())
    expected = reference[:, 0] if channels == 1 else reference.mean(axis=1, dtype=np.float32)
    np.testing.assert_array_equal(decoded.samples, expected)


def test_chooses_a_channel_by_index(tmp_path: Path) -> None:
    frames = _tone(channels=4)
    path = tmp_path / "four.wav"
    sf.write(path, frames, RATE, format="WAVEX", subtype="PCM_24")
    for index in range(4):
        decoded = decode_audio(path, channel=index)
        np.testing.assert_allclose(decoded.samples, frames[:, index], atol=1e-6)
        assert decoded.channels == 4


def test_reads_the_same_from_a_path_and_from_bytes(tmp_path: Path) -> None:
    path = tmp_path / "clip.flac"
    sf.write(path, _tone(channels=2), 22050, format="FLAC", subtype="PCM_16")
    from_path = decode_audio(path)
    from_bytes = decode_audio(path.read_bytes())
    assert from_path.sample_rate == from_bytes.sample_rate == 22050
    np.testing.assert_array_equal(from_path.samples, from_bytes.samples)


def test_real_wave_format_extensible_file_gives_its_eight_microphones() -> None:
    fan = real_data("audio/mimii_fan_id00")
    multichannel = fan / "multichannel" / "normal" / "00000000.wav"
    assert sf.info(multichannel).format == "WAVEX"
    first = decode_audio(multichannel, channel=0)
    assert first.channels == 8
    assert first.sample_rate == RATE
    assert first.duration_s == pytest.approx(10.0)
    # The data set's mono clip is channel 0 of this very recording.
    mono = decode_audio(fan / "normal" / "00000000.wav")
    assert mono.channels == 1
    np.testing.assert_array_equal(first.samples, mono.samples)
    mixed = decode_audio(multichannel)
    everything = np.stack([decode_audio(multichannel, channel=c).samples for c in range(8)])
    np.testing.assert_allclose(mixed.samples, everything.mean(axis=0), atol=1e-7)


def test_real_flac_decodes() -> None:
    path = sorted((real_data("audio/uav_propeller") / "normal").glob("*.flac"))[0]
    decoded = decode_audio(path)
    assert decoded.sample_rate == RATE
    assert decoded.channels == 1
    assert decoded.duration_s > 40
    assert np.abs(decoded.samples).max() <= 1.0


def _truncated_wav() -> bytes:
    data = encode(_tone(), fmt="WAV", subtype="PCM_16")
    return data[: len(data) - 1000]


def _nan_wav(value: float) -> bytes:
    frames = _tone()
    frames[100, 0] = value
    frames[200, 0] = value
    return encode(frames, fmt="WAV", subtype="FLOAT")


def _wav_with_data_after_a_list_chunk_that_is_cut() -> bytes:
    """A LIST chunk before the data chunk, so the data chunk is found by walking the chunks."""
    pcm = (np.arange(800, dtype=np.int16) * 40).tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, RATE, RATE * 2, 2, 16)
    listing = b"INFOISFT" + struct.pack("<I", 5) + b"test\x00" + b"\x00"  # odd: padded
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"LIST"
        + struct.pack("<I", len(listing) - 1)
        + listing
        + b"data"
        + struct.pack("<I", len(pcm))
        + pcm
    )
    return (b"RIFF" + struct.pack("<I", len(body)) + body)[:-600]


REFUSALS = [
    ("empty", b"", "audio is empty (0 bytes)"),
    ("garbage", bytes(range(256)) * 8, "not a WAV or FLAC file that can be decoded"),
    ("text", b"this is a text file, not audio\n" * 20, "not a WAV or FLAC file that can"),
    ("truncated WAV", _truncated_wav(), "truncated WAV: the data chunk declares 16000 bytes"),
    (
        "truncated WAV with a LIST chunk",
        _wav_with_data_after_a_list_chunk_that_is_cut(),
        "truncated WAV: the data chunk declares 1600 bytes but only 1000 are present",
    ),
    (
        "truncated FLAC",
        encode(_tone(2.0), fmt="FLAC", subtype="PCM_16")[:-2000],
        "the FLAC audio is corrupt or truncated: flac decoder lost sync",
    ),
    (
        "WAV header only",
        encode(np.zeros((0, 1)), fmt="WAV", subtype="PCM_16"),
        "audio has no samples",
    ),
    ("NaN", _nan_wav(np.nan), "audio contains 2 NaN or infinite samples"),
    ("infinity", _nan_wav(np.inf), "audio contains 2 NaN or infinite samples"),
    (
        "AIFF",
        encode(_tone(), fmt="AIFF", subtype="PCM_16"),
        "unsupported audio format AIFF (PCM_16)",
    ),
    (
        "mu-law WAV",
        encode(_tone(), fmt="WAV", subtype="ULAW"),
        "unsupported audio format WAV (ULAW)",
    ),
    (
        "Ogg Vorbis",
        encode(_tone(), fmt="OGG", subtype="VORBIS"),
        "unsupported audio format OGG (VORBIS)",
    ),
]


@pytest.mark.parametrize(
    ("data", "reason"),
    [(data, reason) for _, data, reason in REFUSALS],
    ids=[name for name, _, _ in REFUSALS],
)
def test_refuses_what_is_not_complete_finite_audio(data: bytes, reason: str) -> None:
    with pytest.raises(AudioDecodeError) as caught:
        decode_audio(data)
    assert reason in str(caught.value)


def test_libsndfile_alone_would_accept_the_truncated_wav() -> None:
    """Why decode_audio walks the RIFF chunks itself: libsndfile reads the cut file quietly."""
    samples, _ = sf.read(io.BytesIO(_truncated_wav()))
    assert samples.shape[0] == 8000 - 500


def test_truncated_flac_is_refused_from_a_file_too(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    path.write_bytes(encode(_tone(2.0), fmt="FLAC", subtype="PCM_16")[:-2000])
    with pytest.raises(AudioDecodeError, match="the FLAC audio is corrupt or truncated"):
        decode_audio(path)


@pytest.mark.parametrize("channel", [2, -1])
def test_refuses_a_channel_out_of_range(channel: int) -> None:
    with pytest.raises(AudioDecodeError, match=rf"channel {channel} is out of range: .* 2 chan"):
        decode_audio(encode(_tone(channels=2), fmt="WAV", subtype="PCM_16"), channel=channel)


def test_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match=r"cannot read .*missing\.wav"):
        decode_audio(tmp_path / "missing.wav")


def test_load_audio_resamples_to_the_models_rate() -> None:
    rate = 44100
    t = np.arange(rate) / rate
    data = encode(0.5 * np.sin(2 * np.pi * 1000 * t)[:, None], rate, fmt="WAV", subtype="FLOAT")
    samples = load_audio(data, RATE)
    assert samples.dtype == np.float32
    assert samples.shape == (RATE,)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) == 1000  # 1 s at 16 kHz: bin k is k Hz


# Limits: every cost is bounded from the header before a sample is decoded (issue 10).


def _with_rate(rate: int) -> bytes:
    """A real 16-bit WAV whose fmt chunk declares `rate` (and the matching byte rate)."""
    data = bytearray(encode(_tone(0.01), fmt="WAV", subtype="PCM_16"))
    assert data[12:16] == b"fmt "
    struct.pack_into("<II", data, 24, rate, min(rate * 2, 0xFFFFFFFF))
    return bytes(data)


def _flac_declaring(frames: int, *, seconds: float, channels: int, rate: int) -> bytes:
    """A real FLAC of `seconds` of silence whose STREAMINFO claims `frames` frames."""
    data = bytearray(encode(np.zeros((int(seconds * rate), channels)), rate, fmt="FLAC"))
    assert data[:4] == b"fLaC"
    fields = int.from_bytes(data[18:26], "big")  # rate, channels, bits, then 36-bit length
    fields = (fields & ~((1 << 36) - 1)) | frames
    data[18:26] = fields.to_bytes(8, "big")
    return bytes(data)


@pytest.mark.parametrize("rate", [1_000_003, 15_000_001, 2_147_483_647, 192_001, 7_999, 1_000])
def test_refuses_a_header_rate_outside_the_range_before_decoding(rate: int) -> None:
    data = _with_rate(rate)
    assert sf.info(io.BytesIO(data)).samplerate == rate
    with pytest.raises(
        AudioDecodeError,
        match=rf"sample rate {rate} Hz is outside the accepted "
        r"range 8000 to 192000 Hz",
    ):
        load_audio(data, RATE)


def test_the_rate_range_and_ceiling_come_from_the_settings() -> None:
    limits = DecodeLimits.from_settings(
        Settings(min_sample_rate=16000, max_sample_rate=16000, max_decoded_samples=1000)
    )
    with pytest.raises(AudioDecodeError, match="sample rate 8000 Hz is outside the accepted"):
        decode_audio(encode(_tone(0.1, rate=8000), 8000), limits=limits)
    with pytest.raises(AudioDecodeError, match=r"1600 samples \(1600 frames x 1 channels\)"):
        decode_audio(encode(_tone(0.1)), limits=limits)
    assert decode_audio(encode(_tone(0.05)), limits=limits).samples.size == 800


def test_refuses_a_declared_length_over_the_clip_limit_before_decoding() -> None:
    """A 10 h silent FLAC (here one whose header says so) is refused from its header."""
    ten_hours = _flac_declaring(10 * 3600 * 16000, seconds=1.0, channels=1, rate=16000)
    with pytest.raises(AudioDecodeError, match=r"clip is 36000\.0 s long; the limit is 600 s"):
        decode_audio(ten_hours)


def test_refuses_more_decoded_samples_than_the_ceiling_within_the_clip_limit() -> None:
    """600 s x 8 channels x 96 kHz is inside the clip limit and the rate range, not the ceiling."""
    bomb = _flac_declaring(600 * 96000, seconds=0.5, channels=8, rate=96000)
    with pytest.raises(AudioDecodeError, match=r"460800000 samples .* the limit is 28800000"):
        decode_audio(bomb)


def test_refuses_a_flac_that_does_not_state_its_length() -> None:
    unknown = _flac_declaring(0, seconds=0.5, channels=1, rate=RATE)
    with pytest.raises(AudioDecodeError, match="does not state how many samples"):
        decode_audio(unknown)


def test_a_flac_claiming_fewer_frames_than_it_holds_decodes_only_those() -> None:
    short_claim = _flac_declaring(100, seconds=2.0, channels=2, rate=RATE)
    assert decode_audio(short_claim).samples.shape == (100,)


def _peak_numpy_bytes(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        with contextlib.suppress(AudioDecodeError):
            action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_real_bomb_is_refused_without_decoding_it(tmp_path: Path) -> None:
    """A truthful FLAC of 20 s x 8 channels x 48 kHz of silence over a lowered ceiling: refused
    with almost nothing allocated (decoding it would take 31 MB as float32)."""
    path = tmp_path / "bomb.flac"
    with sf.SoundFile(path, "w", 48000, 8, format="FLAC", subtype="PCM_16") as out:
        for _ in range(20):
            out.write(np.zeros((48000, 8), dtype=np.float32))
    data = path.read_bytes()
    assert len(data) < 200_000
    limits = DecodeLimits(max_samples=1_000_000)
    with pytest.raises(AudioDecodeError, match="the limit is 1000000"):
        decode_audio(data, limits=limits)
    assert _peak_numpy_bytes(lambda: decode_audio(data, limits=limits)) < 1_000_000


def test_multichannel_audio_is_mixed_block_by_block(tmp_path: Path) -> None:
    """Peak memory is about the mono output, not frames x channels as float32."""
    frames = _tone(60.0, channels=8)
    path = tmp_path / "eight.wav"
    sf.write(path, frames, RATE, subtype="PCM_16")
    data = path.read_bytes()
    decoded = decode_audio(data)
    np.testing.assert_allclose(decoded.samples, frames.mean(axis=1), atol=1e-4)
    del frames
    all_channels = 60 * RATE * 8 * 4
    assert _peak_numpy_bytes(lambda: decode_audio(data)) < all_channels / 2


@pytest.mark.parametrize("loudness", [1e19, 1e30, 1001.0])
def test_refuses_finite_float_samples_far_beyond_full_scale(loudness: float) -> None:
    """Finite, but their power spectrum overflows to infinity (1e19 scored as normal before)."""
    frames = _tone()
    frames[100, 0] = loudness
    with pytest.raises(AudioDecodeError, match=r"samples of magnitude .* beyond 1000 \(60 dB"):
        decode_audio(encode(frames, fmt="WAV", subtype="FLOAT"))


def test_float_samples_over_full_scale_but_within_the_bound_are_audio() -> None:
    frames = _tone() * 4  # clipped-looking float audio up to 2.0 is still audio
    frames[100, 0] = 999.0
    decoded = decode_audio(encode(frames, fmt="WAV", subtype="FLOAT"))
    assert decoded.samples[100] == pytest.approx(999.0)


def test_a_double_too_large_for_float32_is_refused_as_infinite() -> None:
    frames = _tone()
    frames[100, 0] = 1e300
    with pytest.raises(AudioDecodeError, match="audio contains 1 NaN or infinite samples"):
        decode_audio(encode(frames, fmt="WAV", subtype="DOUBLE"))

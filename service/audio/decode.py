"""Decode WAV and FLAC (bytes or files) into mono float32 samples, refusing anything that is
not complete, finite audio with a message that says what was wrong.

Every cost is bounded before it is paid: the header's sample rate, length and channel count are
checked against `DecodeLimits` before a sample is decoded, the file is then decoded in blocks of
at most BLOCK_FRAMES frames and never past the length its header declares, and each block is
reduced to one channel at once, so memory peaks at about the mono float32 output."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

# Re-exported: callers catch the decoding and resampling refusals as one.
from service.audio.errors import AudioDecodeError as AudioDecodeError
from service.audio.resample import resample
from service.config import (
    DEFAULT_MAX_CLIP_SECONDS,
    DEFAULT_MAX_DECODED_SAMPLES,
    DEFAULT_MAX_RESAMPLE_FACTOR,
    DEFAULT_MAX_SAMPLE_RATE,
    DEFAULT_MIN_SAMPLE_RATE,
    Settings,
)

ChannelChoice = int | Literal["mean"]

_FORMATS = {"WAV", "WAVEX", "FLAC"}
_SUBTYPES = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"}
# Writers that stream to a pipe cannot know the length and put one of these in the header.
_UNKNOWN_DATA_SIZES = {0, 0xFFFFFFFF}
# What libsndfile reports as the length of a file whose header does not state it.
_UNKNOWN_FRAMES = 2**63 - 1
BLOCK_FRAMES = 65_536
# Float audio is nominally within [-1, 1] (PCM always decodes into it). Far beyond it, finite
# samples overflow the float32 power spectrum to infinity (from about 1e16 with a 4096-point
# FFT), so anything beyond 1000 (60 dB above full scale) is refused as not being audio.
MAX_FLOAT_AMPLITUDE = 1e3
# 16-bit PCM sample k stands for k / 32768, libsndfile's convention; streams and evidence use it.
PCM16_FULL_SCALE = 32768
_PCM16_SCALE = np.float32(1 / PCM16_FULL_SCALE)


@dataclass(frozen=True)
class DecodeLimits:
    """What decoding one clip may cost; the defaults are the service's."""

    max_seconds: float = DEFAULT_MAX_CLIP_SECONDS
    min_sample_rate: int = DEFAULT_MIN_SAMPLE_RATE
    max_sample_rate: int = DEFAULT_MAX_SAMPLE_RATE
    max_samples: int = DEFAULT_MAX_DECODED_SAMPLES  # frames x channels
    max_resample_factor: int = DEFAULT_MAX_RESAMPLE_FACTOR  # checked when resampling

    @classmethod
    def from_settings(cls, settings: Settings) -> DecodeLimits:
        return cls(
            max_seconds=settings.max_clip_seconds,
            min_sample_rate=settings.min_sample_rate,
            max_sample_rate=settings.max_sample_rate,
            max_samples=settings.max_decoded_samples,
            max_resample_factor=settings.max_resample_factor,
        )


DEFAULT_LIMITS = DecodeLimits()


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, 1-D
    sample_rate: int
    channels: int  # in the source, before choosing or mixing

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate


def _check_wav_length(data: bytes) -> None:
    """Refuse a RIFF/WAVE file whose data chunk is shorter than its header says: libsndfile
    reads such a file without complaint, as if it were shorter."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body = offset + 8
        if chunk_id == b"data":
            present = len(data) - body
            if size not in _UNKNOWN_DATA_SIZES and size > present:
                raise AudioDecodeError(
                    f"truncated WAV: the data chunk declares {size} bytes "
                    f"but only {present} are present"
                )
            return
        offset = body + size + (size & 1)  # chunks are padded to an even length


def _libsndfile_reason(exc: Exception) -> str:
    reason = getattr(exc, "error_string", None) or str(exc)
    return str(reason).removeprefix("Error : ").rstrip(".")


def _check_header(audio: sf.SoundFile, limits: DecodeLimits) -> None:
    """Refuse, from the header alone, a file whose rate or declared size is out of bounds."""
    if audio.format not in _FORMATS or audio.subtype not in _SUBTYPES:
        raise AudioDecodeError(
            f"unsupported audio format {audio.format} ({audio.subtype}); "
            "send WAV or FLAC with PCM or float samples"
        )
    rate, frames, channels = int(audio.samplerate), int(audio.frames), int(audio.channels)
    if not limits.min_sample_rate <= rate <= limits.max_sample_rate:
        raise AudioDecodeError(
            f"sample rate {rate} Hz is outside the accepted range "
            f"{limits.min_sample_rate} to {limits.max_sample_rate} Hz"
        )
    if frames == _UNKNOWN_FRAMES:
        raise AudioDecodeError(
            f"the {audio.format} header does not state how many samples the file holds; "
            "send a file written with its length"
        )
    seconds = frames / rate
    if seconds > limits.max_seconds:
        raise AudioDecodeError(
            f"clip is {seconds:.1f} s long; the limit is {limits.max_seconds:g} s"
        )
    if frames * channels > limits.max_samples:
        raise AudioDecodeError(
            f"clip would decode to {frames * channels} samples ({frames} frames x {channels} "
            f"channels); the limit is {limits.max_samples}"
        )


def _channel_picker(channel: ChannelChoice, n_channels: int) -> Callable[[np.ndarray], np.ndarray]:
    """Reduces a block (frames, channels) to the chosen channel or the mean of all."""
    if channel == "mean":
        if n_channels == 1:
            return lambda block: block[:, 0]
        return lambda block: block.mean(axis=1, dtype=np.float32)
    if isinstance(channel, int) and not isinstance(channel, bool):
        if not 0 <= channel < n_channels:
            raise AudioDecodeError(
                f"channel {channel} is out of range: the audio has {n_channels} "
                f"channel{'s' if n_channels > 1 else ''} (0 to {n_channels - 1})"
            )
        return lambda block: block[:, channel]
    raise AudioDecodeError(f"channel must be an index or 'mean', got {channel!r}")


def _read(data: bytes, channel: ChannelChoice, limits: DecodeLimits) -> tuple[np.ndarray, int, int]:
    """Mono float32 samples, the sample rate and the source's channel count."""
    try:
        audio = sf.SoundFile(io.BytesIO(data))
    except sf.SoundFileError as exc:
        raise AudioDecodeError(
            f"not a WAV or FLAC file that can be decoded: {_libsndfile_reason(exc)}"
        ) from exc
    with audio:
        _check_header(audio, limits)
        declared, n_channels = int(audio.frames), int(audio.channels)
        pick = _channel_picker(channel, n_channels)
        # 16-bit PCM, what nearly every station sends, is read as integers and scaled here:
        # libsndfile's own conversion to float is 8x slower and gives the same values
        # (x / 32768), and integer samples need no check for NaN or loudness.
        pcm16 = audio.subtype == "PCM_16"
        # Bounded by the checks above; libsndfile never reads past the declared length, so a
        # file with more data than its header says cannot grow it.
        samples = np.empty(declared, dtype=np.float32)
        filled = non_finite = 0
        loudest = 0.0
        while filled < declared:
            try:
                block = audio.read(
                    min(BLOCK_FRAMES, declared - filled),
                    dtype="int16" if pcm16 else "float32",
                    always_2d=True,
                )
            except sf.SoundFileError as exc:
                raise AudioDecodeError(
                    f"the {audio.format} audio is corrupt or truncated: {_libsndfile_reason(exc)}"
                ) from exc
            if block.shape[0] == 0:
                break
            if pcm16:
                block = block.astype(np.float32)
                block *= _PCM16_SCALE
            else:
                finite = np.isfinite(block)
                non_finite += block.size - int(np.count_nonzero(finite))
                if not non_finite:
                    loudest = max(loudest, float(np.abs(block).max()))
            samples[filled : filled + block.shape[0]] = pick(block)
            filled += block.shape[0]
        rate = int(audio.samplerate)
    if filled < declared:
        raise AudioDecodeError(
            f"truncated audio: the header declares {declared} frames "
            f"but only {filled} could be read"
        )
    if declared == 0:
        raise AudioDecodeError("audio has no samples")
    if non_finite:
        raise AudioDecodeError(f"audio contains {non_finite} NaN or infinite samples")
    if loudest > MAX_FLOAT_AMPLITUDE:
        raise AudioDecodeError(
            f"audio has samples of magnitude {loudest:.3g}; float audio is nominally within "
            f"[-1, 1] and samples beyond {MAX_FLOAT_AMPLITUDE:g} (60 dB above full scale) are "
            "refused, as their spectrum would overflow"
        )
    return samples, rate, n_channels


def decode_audio(
    source: bytes | Path, *, channel: ChannelChoice = "mean", limits: DecodeLimits = DEFAULT_LIMITS
) -> DecodedAudio:
    """Decode a WAV or FLAC file (PCM 8/16/24/32-bit or float, any channel count) and take one
    channel by index or the mean of all channels. Raises AudioDecodeError, before decoding
    anything when the header is out of `limits`."""
    if isinstance(source, Path):
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise AudioDecodeError(f"cannot read {source}: {exc.strerror or exc}") from exc
    else:
        data = bytes(source)
    if not data:
        raise AudioDecodeError("audio is empty (0 bytes)")
    _check_wav_length(data)
    samples, rate, n_channels = _read(data, channel, limits)
    return DecodedAudio(samples=samples, sample_rate=rate, channels=n_channels)


def load_audio(
    source: bytes | Path,
    sample_rate: int,
    *,
    channel: ChannelChoice = "mean",
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> np.ndarray:
    """Decoded float32 samples resampled to sample_rate. Raises AudioDecodeError, also for a
    rate the service does not resample from (see `resample`)."""
    decoded = decode_audio(source, channel=channel, limits=limits)
    return resample(
        decoded.samples,
        decoded.sample_rate,
        sample_rate,
        min_rate=limits.min_sample_rate,
        max_rate=limits.max_sample_rate,
        max_factor=limits.max_resample_factor,
    )

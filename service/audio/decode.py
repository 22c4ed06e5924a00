"""Decode WAV and FLAC (bytes or files) into mono float32 samples, refusing anything that is
not complete, finite audio with a message that says what was wrong."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from service.audio.resample import resample

ChannelChoice = int | Literal["mean"]

_FORMATS = {"WAV", "WAVEX", "FLAC"}
_SUBTYPES = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"}
# Writers that stream to a pipe cannot know the length and put one of these in the header.
_UNKNOWN_DATA_SIZES = {0, 0xFFFFFFFF}


class AudioDecodeError(ValueError):
    """The input is not audio this service can score; the message says why."""


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


def _read(data: bytes) -> tuple[np.ndarray, int]:
    """Samples (frames, channels) as float32 and the sample rate."""
    try:
        audio = sf.SoundFile(io.BytesIO(data))
    except sf.SoundFileError as exc:
        raise AudioDecodeError(
            f"not a WAV or FLAC file that can be decoded: {_libsndfile_reason(exc)}"
        ) from exc
    with audio:
        if audio.format not in _FORMATS or audio.subtype not in _SUBTYPES:
            raise AudioDecodeError(
                f"unsupported audio format {audio.format} ({audio.subtype}); "
                "send WAV or FLAC with PCM or float samples"
            )
        declared = audio.frames
        try:
            samples = audio.read(dtype="float32", always_2d=True)
        except sf.SoundFileError as exc:
            raise AudioDecodeError(
                f"the {audio.format} audio is corrupt or truncated: {_libsndfile_reason(exc)}"
            ) from exc
        rate = int(audio.samplerate)
    if samples.shape[0] < declared:
        raise AudioDecodeError(
            f"truncated audio: the header declares {declared} frames "
            f"but only {samples.shape[0]} could be read"
        )
    return samples, rate


def decode_audio(source: bytes | Path, *, channel: ChannelChoice = "mean") -> DecodedAudio:
    """Decode a WAV or FLAC file (PCM 8/16/24/32-bit or float, any channel count) and take one
    channel by index or the mean of all channels."""
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
    frames, rate = _read(data)
    n_frames, n_channels = frames.shape
    if n_frames == 0:
        raise AudioDecodeError("audio has no samples")
    non_finite = int(np.count_nonzero(~np.isfinite(frames)))
    if non_finite:
        raise AudioDecodeError(f"audio contains {non_finite} NaN or infinite samples")
    if channel == "mean":
        samples = frames[:, 0] if n_channels == 1 else frames.mean(axis=1, dtype=np.float32)
    elif isinstance(channel, int) and not isinstance(channel, bool):
        if not 0 <= channel < n_channels:
            raise AudioDecodeError(
                f"channel {channel} is out of range: the audio has {n_channels} "
                f"channel{'s' if n_channels > 1 else ''} (0 to {n_channels - 1})"
            )
        samples = frames[:, channel]
    else:
        raise AudioDecodeError(f"channel must be an index or 'mean', got {channel!r}")
    return DecodedAudio(
        samples=np.ascontiguousarray(samples, dtype=np.float32),
        sample_rate=rate,
        channels=n_channels,
    )


def load_audio(
    source: bytes | Path, sample_rate: int, *, channel: ChannelChoice = "mean"
) -> np.ndarray:
    """Decoded float32 samples resampled to sample_rate."""
    decoded = decode_audio(source, channel=channel)
    return resample(decoded.samples, decoded.sample_rate, sample_rate)

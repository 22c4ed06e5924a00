"""Forged inputs for the fuzz tests and the hardening benchmarks: WAV files whose header says
whatever we like, FLAC files with patched STREAMINFO, silent FLAC bombs written in chunks,
deeply nested or huge-number JSON."""

from __future__ import annotations

import io
import struct

import numpy as np
import soundfile as sf

WAVE_FORMAT_PCM = 1
WAVE_FORMAT_IEEE_FLOAT = 3
# A RIFF data size that streaming writers use when the length is unknown.
UNKNOWN_SIZE = 0xFFFFFFFF
_FLAC_STREAMINFO_FIELDS = 18  # byte offset of sample rate | channels | bits | total samples


def wav(
    data: bytes,
    *,
    rate: int,
    channels: int = 1,
    bits: int = 16,
    format_tag: int = WAVE_FORMAT_PCM,
    data_size: int | None = None,
    block_align: int | None = None,
    byte_rate: int | None = None,
) -> bytes:
    """A RIFF/WAVE file around `data` with every header field as given (lies included); fields
    are masked to their width so any integer can be written."""
    align = block_align if block_align is not None else channels * max(bits, 8) // 8
    fmt = struct.pack(
        "<HHIIHH",
        format_tag & 0xFFFF,
        channels & 0xFFFF,
        rate & 0xFFFFFFFF,
        (byte_rate if byte_rate is not None else rate * align) & 0xFFFFFFFF,
        align & 0xFFFF,
        bits & 0xFFFF,
    )
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", size & 0xFFFFFFFF) + data
    return b"RIFF" + struct.pack("<I", len(body) & 0xFFFFFFFF) + body


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as little-endian 16-bit PCM bytes."""
    return bytes((np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes())


def noise(n: int, *, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def encode(samples: np.ndarray, rate: int, *, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    """Samples (frames,) or (frames, channels) as a real WAV or FLAC file written by libsndfile."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def silent_flac(seconds: float, *, rate: int, channels: int = 1, chunk_s: float = 10.0) -> bytes:
    """A FLAC of `seconds` of digital silence, written in chunks so building it needs little
    memory: FLAC stores silence in a few bytes per block, so hours fit in a few hundred KB."""
    buffer = io.BytesIO()
    chunk = np.zeros((int(chunk_s * rate), channels), dtype=np.int16)
    remaining = int(seconds * rate)
    with sf.SoundFile(
        buffer, "w", samplerate=rate, channels=channels, format="FLAC", subtype="PCM_16"
    ) as out:
        while remaining > 0:
            take = min(remaining, chunk.shape[0])
            out.write(chunk[:take])
            remaining -= take
    return buffer.getvalue()


def patch_flac_streaminfo(
    flac: bytes,
    *,
    rate: int | None = None,
    total_samples: int | None = None,
    channels: int | None = None,
) -> bytes:
    """The FLAC with its STREAMINFO sample rate (20 bits), channel count (1..8) or total
    sample count (36 bits) replaced; the audio frames are left as they were."""
    if flac[:4] != b"fLaC":
        raise ValueError("not a FLAC stream")
    (packed,) = struct.unpack_from(">Q", flac, _FLAC_STREAMINFO_FIELDS)
    old_rate = packed >> 44
    old_channels = ((packed >> 41) & 0x7) + 1
    bits_minus_one = (packed >> 36) & 0x1F
    old_total = packed & ((1 << 36) - 1)
    new_rate = old_rate if rate is None else rate & 0xFFFFF
    new_channels = old_channels if channels is None else channels
    new_total = old_total if total_samples is None else total_samples & ((1 << 36) - 1)
    packed = (
        (new_rate << 44) | (((new_channels - 1) & 0x7) << 41) | (bits_minus_one << 36) | new_total
    )
    return flac[:_FLAC_STREAMINFO_FIELDS] + struct.pack(">Q", packed) + flac[26:]


def nested_json(depth: int) -> bytes:
    """`depth` nested arrays around one number: parsers that recurse run out of stack."""
    return b"[" * depth + b"1" + b"]" * depth


def rows_json(rows: int, channels: int, value: str) -> bytes:
    """A JSON array of `rows` rows of `channels` copies of the literal `value` (e.g. a
    400-digit number, 1e400, NaN or Infinity, which Python's json accepts)."""
    row = "[" + ",".join([value] * channels) + "]"
    return ("[" + ",".join([row] * rows) + "]").encode()

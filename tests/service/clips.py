"""Small real audio bundles and real WAV/FLAC clips of generated machine sound for the service
tests."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from tests.bundle_factory import machine_sound, make_audio_bundle

# Small log-mel settings keep bundles quick to build and clips quick to score: 32 mels,
# 8-frame blocks of 128 ms at 16 kHz.
SMALL_FEATURES: dict[str, Any] = {
    "n_mels": 32,
    "frames_per_block": 8,
    "n_fft": 512,
    "hop_length": 256,
}
RATE = 16000


def small_audio_bundle(directory: Path, **kwargs: Any) -> Path:
    """A real audio bundle with SMALL_FEATURES (name and version as given)."""
    return make_audio_bundle(directory, **{**SMALL_FEATURES, **kwargs})


def encode(
    samples: np.ndarray, rate: int = RATE, *, fmt: str = "WAV", subtype: str = "PCM_16"
) -> bytes:
    """Samples (frames,) or (frames, channels) as the bytes of a real WAV or FLAC file."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def clip(seconds: float, *, seed: int = 1, anomalous: bool = False, rate: int = RATE) -> bytes:
    return encode(machine_sound(seconds, sample_rate=rate, seed=seed, anomalous=anomalous), rate)

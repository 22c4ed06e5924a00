"""Interference for the UAV test clips: other real machine recordings, looped to the clip's
length and mixed in at a signal-to-interference ratio over the whole clip."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.audio_protocol import SAMPLE_RATE
from service.audio.decode import load_audio


def interference_pool(data_dir: Path) -> list[tuple[str, np.ndarray]]:
    """Every normal recording of dcase2020_dev (six machine types) and mimii_fan_id00, decoded
    at 16 kHz: the machines a drone's microphone might hear in a factory hall."""
    paths = sorted((data_dir / "audio" / "dcase2020_dev").glob("*/test/normal_*.wav"))
    paths += sorted((data_dir / "audio" / "mimii_fan_id00" / "normal").glob("*.wav"))
    if not paths:
        raise SystemExit(f"no interference recordings under {data_dir / 'audio'}")
    return [(str(p.relative_to(data_dir)), load_audio(p, SAMPLE_RATE)) for p in paths]


def mix_at_snr(
    signal: np.ndarray, interference: np.ndarray, snr_db: float, offset: int
) -> np.ndarray:
    """signal + g * interference, the interference looped from `offset` to the signal's length
    and g chosen so that mean(signal^2) / mean((g * interference)^2) = 10^(snr_db / 10)."""
    looped = np.resize(np.roll(interference, -offset), signal.size).astype(np.float64)
    signal_power = float(np.mean(np.square(signal, dtype=np.float64)))
    interference_power = float(np.mean(np.square(looped)))
    if signal_power == 0 or interference_power == 0:
        raise ValueError("cannot set an SNR against a silent signal or interference")
    gain = np.sqrt(signal_power / (interference_power * 10 ** (snr_db / 10)))
    mixed: np.ndarray = (signal + gain * looped).astype(np.float32)
    return mixed


def mixed_clips(
    clips: Sequence[np.ndarray],
    pool: Sequence[tuple[str, np.ndarray]],
    snr_db: float,
    seed: int,
) -> list[np.ndarray]:
    """Each clip with its own interference recording and offset, drawn from `seed` alone, so
    every model of a seed hears the same mixtures and each SNR the same interferers."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(pool), size=len(clips))
    offsets = rng.integers(1 << 30, size=len(clips))
    return [
        mix_at_snr(clip, pool[pick][1], snr_db, int(offset % pool[pick][1].size))
        for clip, pick, offset in zip(clips, picks, offsets, strict=True)
    ]

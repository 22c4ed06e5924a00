"""Seeded synthetic machine sounds (harmonic hum + noise, with clicks, shifted harmonics or bearing
tones as anomalies) and writers of small DCASE-layout or folder-layout trees of real audio files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

AnomalyKind = Literal["click", "shifted_harmonics", "bearing"]
ANOMALY_KINDS: tuple[AnomalyKind, ...] = ("click", "shifted_harmonics", "bearing")
AudioFormat = Literal["wav", "flac"]


@dataclass(frozen=True)
class Machine:
    """One machine's sound: a hum at `fundamental_hz` with decaying harmonics, in noise."""

    fundamental_hz: float = 120.0
    n_harmonics: int = 8
    noise_level: float = 0.05


def machine_sound(
    machine: Machine,
    seconds: float,
    sample_rate: int,
    rng: np.random.Generator,
    anomaly: AnomalyKind | None = None,
) -> np.ndarray:
    """A float32 recording of the machine; every call varies speed, timbre and noise a little,
    as recordings of one machine do."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    fundamental = machine.fundamental_hz * rng.uniform(0.99, 1.01)
    if anomaly == "shifted_harmonics":
        fundamental *= 1.15
    wobble = 1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t + rng.uniform(0, 2 * np.pi))
    signal = np.zeros_like(t)
    for k in range(1, machine.n_harmonics + 1):
        frequency = k * fundamental
        if frequency >= sample_rate / 2:
            break
        amplitude = rng.uniform(0.8, 1.2) / k
        signal += amplitude * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))
    signal *= wobble
    signal += machine.noise_level * rng.uniform(0.8, 1.2) * rng.standard_normal(t.size)
    if anomaly == "click":
        signal += _clicks(t.size, sample_rate, rng)
    elif anomaly == "bearing":
        tone = min(2800.0, 0.35 * sample_rate)
        envelope = 0.5 * (1.0 + np.sin(2 * np.pi * 37.0 * t))
        signal += 0.4 * envelope * np.sin(2 * np.pi * tone * t)
    peak = float(np.max(np.abs(signal)))
    return (0.5 * signal / peak).astype(np.float32)


def _clicks(n_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Short decaying bursts of broadband noise, about eight a second."""
    out = np.zeros(n_samples)
    length = max(1, int(0.005 * sample_rate))
    decay = np.exp(-np.arange(length) / (length / 4))
    n_clicks = max(1, rng.poisson(8.0 * n_samples / sample_rate))
    for start in rng.integers(0, max(1, n_samples - length), size=n_clicks):
        burst = rng.uniform(4.0, 8.0) * decay * rng.standard_normal(length)
        out[start : start + length] += burst[: n_samples - start]
    return out


def _write(path: Path, samples: np.ndarray, sample_rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, sample_rate, subtype="PCM_16")
    return path


def write_dcase_tree(
    root: Path,
    *,
    machine_type: str = "toy_pump",
    machine_ids: Sequence[int] = (0, 2),
    train_normal: int = 6,
    test_normal: int = 3,
    test_anomaly: int = 3,
    seconds: float = 2.0,
    sample_rate: int = 16000,
    anomaly: AnomalyKind = "click",
    seed: int = 0,
) -> Path:
    """Write `<root>/<machine_type>/{train,test}/{normal,anomaly}_id_<ID>_<n>.wav` with the counts
    given per machine ID (each ID is a different machine); return the machine-type folder."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / machine_type
    for machine_id in machine_ids:
        machine = Machine(fundamental_hz=100.0 + 35.0 * machine_id)
        plan: list[tuple[str, str, AnomalyKind | None, int]] = [
            ("train", "normal", None, train_normal),
            ("test", "normal", None, test_normal),
            ("test", "anomaly", anomaly, test_anomaly),
        ]
        for partition, label, kind, count in plan:
            for n in range(count):
                samples = machine_sound(machine, seconds, sample_rate, rng, kind)
                name = f"{label}_id_{machine_id:02d}_{n:08d}.wav"
                _write(folder / partition / name, samples, sample_rate)
    return folder


def write_folder_tree(
    root: Path,
    *,
    normal: int = 8,
    anomalies: Mapping[str, tuple[AnomalyKind, int]] | None = None,
    seconds: float = 6.0,
    sample_rate: int = 16000,
    audio_format: AudioFormat = "flac",
    machine: Machine | None = None,
    seed: int = 0,
) -> Path:
    """Write `<root>/normal/*` and one folder per anomaly class, `anomalies` mapping each class
    folder to (the kind of anomaly, how many recordings); return `root`."""
    rng = np.random.default_rng(seed)
    machine = machine or Machine()
    classes = anomalies if anomalies is not None else {"clicking": ("click", 3)}
    root = Path(root)
    for n in range(normal):
        samples = machine_sound(machine, seconds, sample_rate, rng)
        _write(root / "normal" / f"rec_{n:03d}.{audio_format}", samples, sample_rate)
    for folder, (kind, count) in classes.items():
        for n in range(count):
            samples = machine_sound(machine, seconds, sample_rate, rng, kind)
            _write(root / folder / f"rec_{n:03d}.{audio_format}", samples, sample_rate)
    return root

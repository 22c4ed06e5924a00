"""The synthetic machine sounds are seeded, their anomalies are really there, and the trees they
write are real audio files in the promised layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.audio.synthetic import Machine, machine_sound, write_dcase_tree, write_folder_tree

RATE = 16000


def _spectrum(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.fft.rfftfreq(samples.size, 1 / RATE), np.abs(np.fft.rfft(samples))


def _kurtosis(samples: np.ndarray) -> float:
    centred = samples - samples.mean()
    return float(np.mean(centred**4) / np.mean(centred**2) ** 2)


def test_same_seed_same_sound() -> None:
    first = machine_sound(Machine(), 1.0, RATE, np.random.default_rng(4), "click")
    again = machine_sound(Machine(), 1.0, RATE, np.random.default_rng(4), "click")
    other = machine_sound(Machine(), 1.0, RATE, np.random.default_rng(5), "click")
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.dtype == np.float32
    assert first.size == RATE
    assert np.max(np.abs(first)) == pytest.approx(0.5)


def test_each_anomaly_changes_the_sound_the_way_it_says() -> None:
    machine = Machine(fundamental_hz=120.0)
    rng = np.random.default_rng(0)
    normal = machine_sound(machine, 2.0, RATE, rng)
    freqs, normal_spectrum = _spectrum(normal)
    assert freqs[np.argmax(normal_spectrum)] == pytest.approx(120.0, rel=0.02)

    shifted = machine_sound(machine, 2.0, RATE, rng, "shifted_harmonics")
    _, shifted_spectrum = _spectrum(shifted)
    assert freqs[np.argmax(shifted_spectrum)] == pytest.approx(138.0, rel=0.03)

    bearing = machine_sound(machine, 2.0, RATE, rng, "bearing")
    _, bearing_spectrum = _spectrum(bearing)
    band = (freqs > 2700) & (freqs < 2900)
    share = bearing_spectrum[band].sum() / bearing_spectrum.sum()
    assert share > 3 * normal_spectrum[band].sum() / normal_spectrum.sum()

    clicks = machine_sound(machine, 2.0, RATE, rng, "click")
    assert _kurtosis(clicks) > 3 * _kurtosis(normal)


def test_dcase_tree_holds_readable_wavs_in_the_dcase_layout(tmp_path: Path) -> None:
    folder = write_dcase_tree(
        tmp_path,
        machine_type="valve",
        machine_ids=(1, 3),
        train_normal=2,
        test_normal=1,
        test_anomaly=1,
        seconds=0.5,
    )
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.wav"))
    assert names == [
        "test/anomaly_id_01_00000000.wav",
        "test/anomaly_id_03_00000000.wav",
        "test/normal_id_01_00000000.wav",
        "test/normal_id_03_00000000.wav",
        "train/normal_id_01_00000000.wav",
        "train/normal_id_01_00000001.wav",
        "train/normal_id_03_00000000.wav",
        "train/normal_id_03_00000001.wav",
    ]
    info = sf.info(folder / names[0])
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (RATE, 1, 8000, "PCM_16")


def test_folder_tree_writes_flac_recordings_per_class(tmp_path: Path) -> None:
    root = write_folder_tree(
        tmp_path / "machine",
        normal=3,
        anomalies={"bearing_wear": ("bearing", 2), "clicking": ("click", 1)},
        seconds=1.5,
    )
    counts = {p.name: len(list(p.glob("*.flac"))) for p in sorted(root.iterdir())}
    assert counts == {"bearing_wear": 2, "clicking": 1, "normal": 3}
    samples, rate = sf.read(root / "clicking" / "rec_000.flac", dtype="float32")
    assert rate == RATE
    assert samples.shape == (int(1.5 * RATE),)
    assert 0.45 < np.max(np.abs(samples)) <= 0.51

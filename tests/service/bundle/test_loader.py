"""load_bundle on real ONNX bundles from tests/bundle_factory.py: loads good, refuses broken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.bundle.loader import BundleError, LoadedBundle, load_bundle
from service.bundle.manifest import MODEL_FILE, AudioManifest, WindowsManifest
from service.features.logmel import LogMelExtractor
from tests.bundle_factory import (
    BrokenProblem,
    machine_sound,
    make_audio_bundle,
    make_windows_bundle,
    sensor_series,
    standardise,
    write_broken_bundle,
)


@pytest.fixture(scope="module")
def audio_bundle(tmp_path_factory: pytest.TempPathFactory) -> LoadedBundle:
    return load_bundle(make_audio_bundle(tmp_path_factory.mktemp("models") / "fan"))


@pytest.fixture(scope="module")
def windows_bundle(tmp_path_factory: pytest.TempPathFactory) -> LoadedBundle:
    return load_bundle(make_windows_bundle(tmp_path_factory.mktemp("models") / "pump"))


def test_audio_bundle_loads_and_runs(audio_bundle: LoadedBundle) -> None:
    manifest = audio_bundle.manifest
    assert isinstance(manifest, AudioManifest)
    assert manifest.name == "test-audio"
    n_mels = manifest.features.n_mels
    blocks = np.random.default_rng(1).normal(-40, 20, (5, manifest.features.block_size))
    outputs = audio_bundle.run({"blocks": blocks.astype(np.float32)})
    assert set(outputs) == {"score", "band_error"}
    assert outputs["score"].shape == (5,)
    assert outputs["band_error"].shape == (5, n_mels)
    # score is the mean squared error, band_error its per-band means: they must agree
    np.testing.assert_allclose(outputs["band_error"].mean(axis=1), outputs["score"], rtol=1e-4)


def test_audio_bundle_separates_normal_from_anomalous_sound(audio_bundle: LoadedBundle) -> None:
    manifest = audio_bundle.manifest
    assert isinstance(manifest, AudioManifest)
    extractor = LogMelExtractor(manifest.features)
    threshold = manifest.clip_decision.threshold
    normal = [
        audio_bundle.run({"blocks": extractor.clip_blocks(machine_sound(3.0, seed=s))})["score"]
        for s in range(7000, 7010)
    ]
    anomalous = [
        audio_bundle.run(
            {"blocks": extractor.clip_blocks(machine_sound(3.0, seed=s, anomalous=True))}
        )["score"]
        for s in range(7000, 7010)
    ]
    assert sum(scores.mean() > threshold for scores in normal) <= 1
    assert all(scores.mean() > 5 * threshold for scores in anomalous)


def test_threshold_scale_multiplies_every_threshold(tmp_path: Path) -> None:
    plain = load_bundle(make_audio_bundle(tmp_path / "a")).manifest
    scaled = load_bundle(make_audio_bundle(tmp_path / "b", threshold_scale=3.0)).manifest
    assert isinstance(plain, AudioManifest)
    assert isinstance(scaled, AudioManifest)
    for field in ("clip_decision", "block_decision", "training_margin"):
        assert getattr(scaled, field).threshold == pytest.approx(
            3.0 * getattr(plain, field).threshold
        )


def test_windows_bundle_flags_the_shifted_channel(windows_bundle: LoadedBundle) -> None:
    manifest = windows_bundle.manifest
    assert isinstance(manifest, WindowsManifest)
    series = sensor_series(1000, seed=77, anomaly=(420, 450, 2))
    windows = standardise(series, manifest).reshape(10, manifest.window, 3)
    outputs = windows_bundle.run({"windows": windows})
    assert outputs["score"].shape == (10, manifest.window)
    assert outputs["channel_error"].shape == (10, manifest.window, 3)
    flagged = outputs["score"].ravel() > manifest.step_decision.threshold
    assert flagged[420:450].all()
    assert flagged[:420].mean() < 0.05
    assert flagged[450:].mean() < 0.05
    worst_channel = outputs["channel_error"].reshape(-1, 3)[420:450].mean(axis=0).argmax()
    assert worst_channel == 2


REFUSALS: list[tuple[BrokenProblem, str]] = [
    ("manifest_missing", "manifest.json: No such file"),
    ("manifest_not_json", "manifest is not valid JSON"),
    ("manifest_incomplete", "features: Field required"),
    ("model_missing", "model.onnx is missing"),
    ("model_not_onnx", "ONNX Runtime cannot load model.onnx"),
    ("wrong_input_name", "the graph has no input 'blocks' (it has ['features'])"),
    ("wrong_output_shape", "output 'band_error' has"),
    ("non_finite_output", "warm-up output 'score' has non-finite values"),
]


@pytest.mark.parametrize(("problem", "reason"), REFUSALS)
def test_broken_bundle_is_refused_saying_which_and_why(
    tmp_path: Path, problem: BrokenProblem, reason: str
) -> None:
    bundle_dir = write_broken_bundle(tmp_path / problem, problem)
    with pytest.raises(BundleError) as caught:
        load_bundle(bundle_dir)
    message = str(caught.value)
    assert str(bundle_dir) in message
    assert reason in message


def test_model_of_the_other_kind_is_refused(tmp_path: Path) -> None:
    audio_dir = make_audio_bundle(tmp_path / "audio")
    windows_dir = make_windows_bundle(tmp_path / "windows")
    (windows_dir / MODEL_FILE).write_bytes((audio_dir / MODEL_FILE).read_bytes())
    with pytest.raises(BundleError, match=r"no input 'windows' \(it has \['blocks'\]\)"):
        load_bundle(windows_dir)


def test_model_with_a_static_width_other_than_the_manifests_is_refused(tmp_path: Path) -> None:
    small = make_audio_bundle(tmp_path / "small", n_mels=16, frames_per_block=8)
    default = make_audio_bundle(tmp_path / "default")
    (default / MODEL_FILE).write_bytes((small / MODEL_FILE).read_bytes())
    with pytest.raises(BundleError, match="input 'blocks' has 128 on axis 1, expected 4096"):
        load_bundle(default)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no-such-bundle"):
        load_bundle(tmp_path / "no-such-bundle")


def test_thread_count_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="intra_op_threads"):
        load_bundle(make_audio_bundle(tmp_path / "a"), intra_op_threads=0)

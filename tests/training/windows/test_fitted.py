"""The fitted sensor models (PCA reconstruction, KMeansAD, kNN, PCA with kNN): what they compute
against scikit-learn and brute force, their score direction, their ONNX export against torch, and
their bundles served by a real server."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from service.bundle.manifest import MODEL_FILE, WindowsManifest, read_history, read_manifest
from service.config import Settings
from service.features.windows import sliding_windows
from tests.bundle_factory import sensor_series
from tests.server import LiveServer, running_server
from tests.training.windows.data_files import labels_for
from training.windows.bundle import export_onnx, write_bundle
from training.windows.config import FITTED_KINDS, POOLINGS, WindowsConfig
from training.windows.evaluation import fit_thresholds, score_test
from training.windows.fitted import fit_fitted_model
from training.windows.models.ensemble import ScaledEnsemble
from training.windows.models.nearest import NearestPatterns, fit_kmeans, fit_knn
from training.windows.models.pca import fit_pca
from training.windows.pipeline import prepare, train_models, validation_part_scores
from training.windows.scoring import score_windows, scores_for
from training.windows.series import SensorData, SeriesPart

WINDOW = 20
CHANNELS = 4
CONFIG = WindowsConfig(window=WINDOW, stride=10, train_stride=5, kmeans_clusters=8, knn_k=3)


_REFERENCE = sensor_series(1500, channels=CHANNELS, seed=1)


def _windows(steps: int, seed: int, stride: int = 5, anomaly: bool = False) -> np.ndarray:
    """Windows of a generated series standardised with the training series' statistics; with
    `anomaly`, channel 2 is shifted over the 40 steps from the middle on."""
    shifted = (steps // 2, steps // 2 + 40, 2) if anomaly else None
    series = sensor_series(steps, channels=CHANNELS, seed=seed, anomaly=shifted)
    standardised = (series - _REFERENCE.mean(axis=0)) / _REFERENCE.std(axis=0)
    starts = np.arange(0, steps - WINDOW + 1, stride)
    return sliding_windows(standardised.astype(np.float32), starts, WINDOW)


@pytest.fixture(scope="module")
def train_windows() -> np.ndarray:
    return _windows(1500, seed=1)


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    """Normal windows none of the models is fitted on, side by side as `prepare` holds them."""
    return _windows(600, seed=3, stride=WINDOW)


def test_pca_reconstruction_is_sklearns_projection(train_windows: np.ndarray) -> None:
    model = fit_pca(train_windows, 0.9)
    flat = train_windows.reshape(train_windows.shape[0], -1).astype(np.float64)
    reference = PCA(n_components=0.9, svd_solver="full").fit(flat)
    test = _windows(400, seed=7)
    expected = reference.inverse_transform(reference.transform(test.reshape(test.shape[0], -1)))
    with torch.no_grad():
        got = model(torch.from_numpy(test)).numpy()
    assert model.components.shape[0] == reference.n_components_ < flat.shape[1]
    np.testing.assert_allclose(got.reshape(test.shape[0], -1), expected, rtol=1e-4, atol=1e-4)


def test_kmeans_reconstructs_a_window_by_its_nearest_centroid(train_windows: np.ndarray) -> None:
    model = fit_kmeans(train_windows, 8, seed=0)
    flat = train_windows.reshape(train_windows.shape[0], -1)
    reference = KMeans(n_clusters=8, n_init=3, random_state=0).fit(flat)
    test = _windows(400, seed=7)
    nearest = reference.predict(test.reshape(test.shape[0], -1))
    with torch.no_grad():
        got = model(torch.from_numpy(test)).numpy()
    expected = reference.cluster_centers_[nearest].reshape(test.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_knn_reconstruction_is_the_mean_of_the_k_nearest_stored_windows() -> None:
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(50, WINDOW, CHANNELS)).astype(np.float32)
    model = fit_knn(bank, k=3, bank_size=100, seed=0)
    queries = rng.normal(size=(6, WINDOW, CHANNELS)).astype(np.float32)
    distances = ((queries[:, None] - bank[None]) ** 2).sum(axis=(2, 3))
    nearest = np.argsort(distances, axis=1)[:, :3]
    expected = bank[nearest].mean(axis=1)
    with torch.no_grad():
        np.testing.assert_allclose(model(torch.from_numpy(queries)).numpy(), expected, rtol=1e-5)
    # A window of the bank is its own nearest neighbour: with k = 1 it is reconstructed exactly.
    exact = NearestPatterns(bank.reshape(50, -1), k=1)
    with torch.no_grad():
        np.testing.assert_array_equal(exact(torch.from_numpy(bank[:5])).numpy(), bank[:5])


def test_the_memory_bank_is_capped_by_a_seeded_draw(train_windows: np.ndarray) -> None:
    small = fit_knn(train_windows, k=3, bank_size=40, seed=0)
    assert small.patterns.shape == (40, WINDOW * CHANNELS)
    again = fit_knn(train_windows, k=3, bank_size=40, seed=0)
    assert torch.equal(small.patterns, again.patterns)
    assert not torch.equal(small.patterns, fit_knn(train_windows, 3, 40, seed=1).patterns)
    with pytest.raises(ValueError, match=r"k must lie in 1\.\.40"):
        NearestPatterns(small.patterns.numpy(), k=41)


def _iqr(values: np.ndarray) -> float:
    q1, q3 = np.percentile(values.astype(np.float64), [25, 75])
    return float(q3 - q1)


def test_the_ensemble_averages_pca_window_and_knn_step_scores_over_their_held_out_iqr(
    train_windows: np.ndarray, held_out: np.ndarray
) -> None:
    model = fit_fitted_model("pca_knn", train_windows, CONFIG, seed=0, held_out=held_out)
    assert isinstance(model, ScaledEnsemble)
    pca = fit_pca(train_windows, CONFIG.pca_explained)
    knn = fit_knn(train_windows, CONFIG.knn_k, CONFIG.knn_bank, seed=0)

    def member_scores(member: torch.nn.Module, windows: np.ndarray, pooling: str) -> np.ndarray:
        with torch.no_grad():
            reconstruction = member(torch.from_numpy(windows)).numpy().astype(np.float64)
        step = ((windows - reconstruction) ** 2).mean(axis=2)
        return (
            step.mean(axis=1, keepdims=True).repeat(WINDOW, axis=1) if pooling == "window" else step
        )

    # Each member's spread is measured on the held-out windows, not on those it was fitted on,
    # where kNN finds each window in its own bank and the spread is smaller.
    pca_scale = _iqr(member_scores(pca, held_out, "window"))
    knn_scale = _iqr(member_scores(knn, held_out, "step"))
    assert _iqr(member_scores(knn, train_windows, "step")) < 0.9 * knn_scale
    np.testing.assert_allclose(model.scales.numpy(), [pca_scale, knn_scale], rtol=1e-4)
    test = _windows(400, seed=7, anomaly=True)
    expected = (
        member_scores(pca, test, "window") / pca_scale
        + member_scores(knn, test, "step") / knn_scale
    ) / 2
    score, channel_error = score_windows(scores_for(model, "step"), test)
    np.testing.assert_allclose(score, expected, rtol=1e-4, atol=1e-6)
    assert channel_error.shape == test.shape
    assert (channel_error >= 0).all()
    # Window pooling on top gives each step the window's mean of that score.
    window_score = score_windows(scores_for(model, "window"), test)[0]
    np.testing.assert_allclose(window_score[:, 0], expected.mean(axis=1), rtol=1e-4)


def test_the_ensemble_needs_held_out_windows(train_windows: np.ndarray) -> None:
    with pytest.raises(ValueError, match="held-out windows"):
        fit_fitted_model("pca_knn", train_windows, CONFIG, seed=0)


def test_pca_knn_is_the_default_with_its_members_pooling_kept() -> None:
    config = WindowsConfig()
    assert (config.model, config.pooling_for(config.model)) == ("pca_knn", "step")
    assert [config.pooling_for(kind) for kind in ("pca", "kmeans", "knn")] == ["window"] * 3
    asked = WindowsConfig(score_pooling="window")
    assert asked.pooling_for("pca_knn") == asked.pooling_for("pca") == "window"


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("kind", FITTED_KINDS)
def test_an_injected_anomaly_scores_above_every_normal_window(
    train_windows: np.ndarray, held_out: np.ndarray, kind: str, pooling: str
) -> None:
    model = fit_fitted_model(kind, train_windows, CONFIG, seed=0, held_out=held_out)
    scoring = scores_for(model, pooling)
    test = _windows(400, seed=7, stride=1, anomaly=True)
    scores = score_windows(scoring, test)[0]
    starts = np.arange(test.shape[0])
    inside = (starts >= 200) & (starts + WINDOW <= 240)
    clear = (starts + WINDOW <= 190) | (starts >= 250)
    per_window = scores.mean(axis=1)
    assert inside.sum() == 21
    assert per_window[inside].min() > per_window[clear].max()
    if pooling == "window":
        np.testing.assert_allclose(scores, scores[:, :1].repeat(WINDOW, axis=1), rtol=1e-6)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("kind", FITTED_KINDS)
def test_onnx_export_equals_torch(
    train_windows: np.ndarray, held_out: np.ndarray, kind: str, pooling: str, tmp_path: Path
) -> None:
    model = fit_fitted_model(kind, train_windows, CONFIG, seed=0, held_out=held_out)
    scoring = scores_for(model, pooling)
    path = export_onnx(scoring, tmp_path / MODEL_FILE, WINDOW, CHANNELS)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # Normal and anomalous windows, at a batch size other than the export's 2.
    windows = np.concatenate([_windows(300, seed=8), _windows(300, seed=9, anomaly=True)])
    score, error = session.run(["score", "channel_error"], {"windows": windows})
    with torch.no_grad():
        expected_score, expected_error = scoring(torch.from_numpy(windows))
    np.testing.assert_allclose(score, expected_score.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(error, expected_error.numpy(), rtol=1e-5, atol=1e-7)


def _data() -> SensorData:
    test = sensor_series(600, channels=CHANNELS, seed=2, anomaly=(300, 340, 1))
    return SensorData(
        name="generated",
        channels=tuple(f"sensor_{i}" for i in range(CHANNELS)),
        train=(SeriesPart("train", sensor_series(2000, channels=CHANNELS, seed=1).astype(float)),),
        test=(SeriesPart("test", test.astype(float), labels_for(600, [(300, 340)])),),
        source="tests.bundle_factory.sensor_series",
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, SensorData]]:
    """One bundle per fitted model, written as `auscult train windows` writes it, served."""
    torch.set_num_threads(1)
    models = tmp_path_factory.mktemp("models")
    data = _data()
    prepared = prepare(data, CONFIG)
    for kind in FITTED_KINDS:
        config = dataclasses.replace(CONFIG, model=kind)
        trained = train_models(prepared, config, [kind], seed=0)[kind]
        thresholds = fit_thresholds(validation_part_scores(trained, prepared, config), config)
        write_bundle(
            models / kind,
            name=kind,
            version="1",
            trained=trained,
            prepared=prepared,
            data=data,
            config=config,
            thresholds=thresholds,
            seed=0,
            data_format="csv",
            data_subset=None,
        )
    with running_server(Settings(models_dir=models, reload_poll_seconds=0)) as live:
        yield live, data


@pytest.mark.parametrize("kind", FITTED_KINDS)
def test_a_fitted_bundle_is_served_and_flags_the_anomaly(
    served: tuple[LiveServer, SensorData], kind: str
) -> None:
    live, data = served
    folder = live.settings.models_dir / kind
    manifest = read_manifest(folder)
    assert isinstance(manifest, WindowsManifest)
    assert manifest.model_type == kind
    # Each model's own pooling: the window's mean, except for the ensemble's members' own.
    assert manifest.model_settings["score_pooling"] == ("step" if kind == "pca_knn" else "window")
    if kind == "pca_knn":
        settings = manifest.model_settings
        assert (settings["pca_pooling"], settings["knn_pooling"]) == ("window", "step")
        assert float(settings["pca_scale"]) > 0
        assert float(settings["knn_scale"]) > 0
    assert "epochs_run" not in manifest.model_settings
    history = read_history(folder)
    assert history is not None
    assert history.stages == {}
    series = data.test[0].values
    with httpx.Client(base_url=live.url, timeout=30.0) as client:
        response = client.post(f"/v1/models/{kind}/windows", json=series.tolist())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["steps"], body["window"]) == (kind, 600, WINDOW)
    prepared = prepare(data, CONFIG)
    model = fit_fitted_model(
        kind, prepared.train_windows, CONFIG, seed=0, held_out=prepared.validation_windows
    )
    scoring = scores_for(model, CONFIG.pooling_for(kind))
    expected, _ = score_test(scoring, data, manifest.channels, CONFIG)
    np.testing.assert_allclose(body["scores"], expected, rtol=1e-5, atol=1e-7)
    flags = np.array(body["anomalies"])
    assert flags[305:335].all()
    # At the default operating point (one alarm per 1,440 normal steps) normal steps stay calm.
    assert np.r_[flags[:280], flags[360:]].mean() < 0.05

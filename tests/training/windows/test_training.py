"""Training on generated series: the fit loop, distillation, thresholds from training data only,
and bundles whose ONNX graph agrees with torch and loads in the service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from service.bundle.loader import load_bundle
from service.bundle.manifest import MODEL_FILE
from service.features.windows import sliding_windows
from service.scoring.windows import WindowsScorer
from tests.bundle_factory import sensor_series
from tests.training.windows.data_files import labels_for
from training.windows.bundle import export_onnx, training_history, write_bundle
from training.windows.bundle_evaluation import evaluate_bundle
from training.windows.config import (
    MODEL_KINDS,
    TRAINED_KINDS,
    AnomalyTransformerSize,
    WindowsConfig,
)
from training.windows.evaluation import fit_thresholds, metrics_at_thresholds, score_test
from training.windows.fit import FitSettings, evaluate_losses
from training.windows.models.transformer import TransformerSize
from training.windows.objectives import cosine_disagreement
from training.windows.pipeline import (
    Prepared,
    TrainedModel,
    batch_losses,
    build_model,
    prepare,
    train_models,
    validation_scores,
)
from training.windows.preprocess import standardise_part
from training.windows.scoring import score_windows, scores_for
from training.windows.series import SensorData, SeriesPart

CONFIG = WindowsConfig(
    window=20,
    stride=10,
    train_stride=5,
    teacher=TransformerSize(d_model=16, n_heads=2, n_layers=2, d_ff=32, dropout=0.0),
    student=TransformerSize(d_model=8, n_heads=2, n_layers=1, d_ff=16, dropout=0.0),
    lstm_hidden=8,
    anomaly_transformer=AnomalyTransformerSize(d_model=8, n_heads=2, n_layers=1, d_ff=8),
    fit=FitSettings(max_epochs=3, batch_size=32, learning_rate=3e-3, patience=2),
)
CHANNELS = 4


def _data(test_seed: int = 2) -> SensorData:
    test = sensor_series(800, channels=CHANNELS, seed=test_seed, anomaly=(400, 440, 2))
    return SensorData(
        name="generated",
        channels=tuple(f"sensor_{i}" for i in range(CHANNELS)),
        train=(SeriesPart("train", sensor_series(2000, channels=CHANNELS, seed=1).astype(float)),),
        test=(SeriesPart("test", test.astype(float), labels_for(800, [(400, 440)])),),
        source="tests.bundle_factory.sensor_series",
    )


@pytest.fixture(scope="module")
def trained() -> tuple[SensorData, Prepared, dict[str, TrainedModel]]:
    torch.set_num_threads(1)
    data = _data()
    prepared = prepare(data, CONFIG)
    return data, prepared, train_models(prepared, CONFIG, MODEL_KINDS, seed=0)


def test_training_keeps_the_best_epochs_weights(
    trained: tuple[SensorData, Prepared, dict[str, TrainedModel]],
) -> None:
    _, prepared, models = trained
    model = models["student"]
    assert model.report.epochs_run >= model.report.best_epoch >= 1
    validation = [torch.from_numpy(prepared.validation_windows)]
    (loss,) = evaluate_losses(model.model, batch_losses("student", CONFIG), validation, 64)
    assert loss == pytest.approx(model.report.best_validation[0], rel=1e-5)
    first = model.report.history[0]["validation"]
    assert model.report.best_validation[0] < first or model.report.best_epoch == 1


def test_distillation_points_the_student_where_the_teacher_points(
    trained: tuple[SensorData, Prepared, dict[str, TrainedModel]],
) -> None:
    _, prepared, models = trained
    windows = torch.from_numpy(prepared.validation_windows)
    with torch.no_grad():
        teacher = models["teacher"].model(windows)
        disagreement = {
            kind: float(cosine_disagreement(models[kind].model(windows), teacher))
            for kind in ("student", "distilled_student")
        }
    assert disagreement["distilled_student"] < disagreement["student"]


def test_thresholds_come_from_training_data_only(
    trained: tuple[SensorData, Prepared, dict[str, TrainedModel]],
) -> None:
    data, prepared, models = trained
    model = models["distilled_student"]
    thresholds = fit_thresholds(validation_scores(model, prepared, CONFIG), CONFIG)
    # The same training data with other test data: the same statistics and thresholds.
    other = prepare(_data(test_seed=99), CONFIG)
    again = fit_thresholds(validation_scores(model, other, CONFIG), CONFIG)
    assert again.gamma == thresholds.gamma
    assert again.percentile_value == thresholds.percentile_value
    assert thresholds.gamma.fitted_on.startswith("per-step scores of the held-out blocks")
    # Fresh normal readings mostly stay under the Gamma threshold; the shifted channel does not.
    scores, _ = score_test(model.scoring, data, prepared.stats, CONFIG)
    normal = np.r_[scores[:380], scores[460:]]
    assert (normal > thresholds.gamma.threshold).mean() < 0.15
    assert (scores[405:435] > thresholds.gamma.threshold).mean() > 0.9


@pytest.mark.parametrize("kind", TRAINED_KINDS)
def test_onnx_and_torch_agree(kind: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    scoring = scores_for(build_model(kind, CHANNELS, CONFIG).eval())
    path = export_onnx(scoring, tmp_path / MODEL_FILE, CONFIG.window, CHANNELS)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    windows = np.random.default_rng(0).normal(size=(7, CONFIG.window, CHANNELS))
    windows = windows.astype(np.float32)  # a batch size other than the export's 2
    score, error = session.run(["score", "channel_error"], {"windows": windows})
    with torch.no_grad():
        expected_score, expected_error = scoring(torch.from_numpy(windows))
    np.testing.assert_allclose(score, expected_score.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(error, expected_error.numpy(), rtol=1e-4, atol=1e-6)


def test_a_bundle_scores_in_the_service_as_in_training(
    trained: tuple[SensorData, Prepared, dict[str, TrainedModel]], tmp_path: Path
) -> None:
    data, prepared, models = trained
    model = models["distilled_student"]
    thresholds = fit_thresholds(validation_scores(model, prepared, CONFIG), CONFIG)
    manifest = write_bundle(
        tmp_path,
        name="generated-distilled",
        version="1",
        trained=model,
        prepared=prepared,
        data=data,
        config=CONFIG,
        thresholds=thresholds,
        seed=0,
        data_format="csv",
        data_subset=None,
    )
    assert manifest.model_settings["distill_weight"] == CONFIG.distill_weight
    assert [c.name for c in manifest.channels] == list(data.channels)
    bundle = load_bundle(tmp_path)  # the service's checks: contract and warm-up
    served = WindowsScorer(bundle).score(data.test[0].values)
    scores, errors = score_test(model.scoring, data, prepared.stats, CONFIG)
    np.testing.assert_allclose(served.scores, scores, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(served.channel_error, errors, rtol=1e-4, atol=1e-7)
    metrics = evaluate_bundle(tmp_path, data, "gamma")
    expected = metrics_at_thresholds(scores, data.test_labels, thresholds, CONFIG.window)
    for key in ("f1", "f1_pa", "auc_pr", "vus_pr", "pct_f1"):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-6)
    assert metrics["n_anomalous_steps"] == 40


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_model_scores_anomalous_windows_higher(
    trained: tuple[SensorData, Prepared, dict[str, TrainedModel]], kind: str
) -> None:
    data, prepared, models = trained
    # Steps 400-439 of the test series carry a shifted channel; the rest is normal. Windows
    # (the unit every model scores) wholly inside it against windows well clear of it.
    test = standardise_part(data.test[0], prepared.stats).values.astype(np.float32)
    starts = np.arange(0, test.shape[0] - CONFIG.window + 1, 5)
    scores = score_windows(models[kind].scoring, sliding_windows(test, starts, CONFIG.window))[0]
    per_window = scores.mean(axis=1)
    inside = (starts >= 400) & (starts + CONFIG.window <= 440)
    clear = (starts + CONFIG.window <= 380) | (starts >= 460)
    assert inside.sum() == 5
    assert per_window[inside].min() > per_window[clear].max()


def test_the_history_holds_every_epoch_of_the_teacher_and_the_student(
    trained: tuple[SensorData, Prepared, dict[str, TrainedModel]],
) -> None:
    _, _, models = trained
    student = models["distilled_student"]
    history = training_history(student)
    assert list(history.stages) == ["teacher", "student"]
    assert student.teacher_report is not None
    for stage, report in (("teacher", student.teacher_report), ("student", student.report)):
        assert len(history.stages[stage]) == report.epochs_run
        assert history.best_epoch[stage] == report.best_epoch
        assert [e.validation_loss for e in history.stages[stage]] == [
            row["validation"] for row in report.history
        ]
    assert list(training_history(models["lstm_ae"]).stages) == ["lstm_ae"]

"""Write a trained windows model as a bundle: the scoring graph in ONNX (standardised windows in,
per-step score and per-channel squared error out) and its manifest."""

from __future__ import annotations

import dataclasses
import warnings
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

from service.bundle.manifest import (
    MODEL_FILE,
    EpochLoss,
    Evaluation,
    TrainingData,
    TrainingHistory,
    WindowsManifest,
    write_history,
    write_manifest,
)
from training.windows.config import FITTED_KINDS, WindowsConfig
from training.windows.evaluation import Thresholds
from training.windows.fit import FitReport
from training.windows.fitted import fitted_settings
from training.windows.pipeline import Prepared, TrainedModel
from training.windows.series import SensorData

ONNX_OPSET = 17


def export_onnx(scoring: nn.Module, path: Path, window: int, n_channels: int) -> Path:
    """Export `scoring` (windows -> score, channel_error) with a free batch axis."""
    example = torch.zeros(2, window, n_channels)
    scoring.eval()
    with warnings.catch_warnings():
        # The TorchScript exporter warns that it is deprecated and that LSTMs exported at batch
        # size 2 may not generalise; tests run the exported graph at other batch sizes.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            scoring,
            (example,),
            str(path),
            input_names=["windows"],
            output_names=["score", "channel_error"],
            dynamic_axes={"windows": {0: "N"}, "score": {0: "N"}, "channel_error": {0: "N"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return path


def _settings(trained: TrainedModel, config: WindowsConfig) -> dict[str, str | int | float | bool]:
    if trained.kind in FITTED_KINDS:
        return {
            "train_stride": config.train_stride,
            "score_pooling": config.pooling_for(trained.kind),
            "train_seconds": round(trained.seconds, 1),
            **fitted_settings(trained.kind, config, trained.model),
        }
    settings: dict[str, str | int | float | bool] = {
        "train_stride": config.train_stride,
        "score_pooling": config.pooling_for(trained.kind),
        "max_epochs": config.fit.max_epochs,
        "epochs_run": trained.report.epochs_run,
        "best_epoch": trained.report.best_epoch,
        "batch_size": config.fit.batch_size,
        "learning_rate": config.fit.learning_rate,
        "train_seconds": round(trained.seconds + trained.teacher_seconds, 1),
    }
    if trained.teacher_report is not None:
        settings["teacher_epochs_run"] = trained.teacher_report.epochs_run
        settings["teacher_best_epoch"] = trained.teacher_report.best_epoch
    if trained.kind in ("teacher", "student", "distilled_student"):
        size = config.teacher if trained.kind == "teacher" else config.student
        settings.update({f"transformer_{k}": v for k, v in dataclasses.asdict(size).items()})
    if trained.kind == "distilled_student":
        settings.update(
            {
                "distill_weight": config.distill_weight,
                "cosine_axis": config.cosine_axis,
                **{f"teacher_{k}": v for k, v in dataclasses.asdict(config.teacher).items()},
            }
        )
    if trained.kind == "lstm_ae":
        settings["lstm_hidden"] = config.lstm_hidden
    if trained.kind == "anomaly_transformer":
        at = dataclasses.asdict(config.anomaly_transformer)
        settings.update({f"anomaly_transformer_{k}": v for k, v in at.items()})
    return settings


def training_history(trained: TrainedModel) -> TrainingHistory:
    """The loss per epoch of the model, after its teacher's where it was distilled from one;
    none for a fitted model, which has no epochs."""
    if trained.kind in FITTED_KINDS:
        return TrainingHistory(stages={})
    reports: dict[str, FitReport] = {}
    if trained.teacher_report is not None:
        reports["teacher"] = trained.teacher_report
    reports["student" if trained.kind == "distilled_student" else trained.kind] = trained.report
    return TrainingHistory(
        stages={
            stage: [
                EpochLoss(
                    epoch=int(row["epoch"]),
                    train_loss=row["train"],
                    validation_loss=row["validation"],
                )
                for row in report.history
            ]
            for stage, report in reports.items()
        },
        best_epoch={stage: report.best_epoch for stage, report in reports.items()},
    )


def write_bundle(
    out_dir: Path,
    *,
    name: str,
    version: str,
    trained: TrainedModel,
    prepared: Prepared,
    data: SensorData,
    config: WindowsConfig,
    thresholds: Thresholds,
    seed: int,
    data_format: str,
    data_subset: str | None,
    evaluation: Evaluation | None = None,
) -> WindowsManifest:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_channels = len(data.channels)
    export_onnx(trained.scoring, out_dir / MODEL_FILE, config.window, n_channels)
    n_labelled = sum(int(p.labels.sum()) for p in data.train if p.labels is not None)
    manifest = WindowsManifest(
        name=name,
        version=version,
        created_at=datetime.now(UTC),
        description=(
            f"{trained.kind.replace('_', ' ')} on {data.name}: {n_channels} channels, "
            f"windows of {config.window} steps"
        ),
        training=TrainingData(
            data=data.source,
            n_normal=data.n_train_steps - n_labelled,
            n_anomaly=n_labelled,
            seed=seed,
        ),
        evaluation=evaluation,
        model_type=trained.kind,
        channels=prepared.stats,
        window=config.window,
        stride=config.stride,
        step_decision=thresholds.gamma,
        percentile_threshold=thresholds.percentile_value,
        percentile=thresholds.percentile,
        data_format=data_format,
        data_subset=data_subset,
        model_settings=_settings(trained, config),
        step_seconds=data.step_seconds,
        operating_points=list(thresholds.points),
        default_operating_point=thresholds.default_point if thresholds.points else None,
    )
    write_manifest(out_dir, manifest)
    write_history(out_dir, training_history(trained))
    return manifest

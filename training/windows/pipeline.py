"""Train the windows models on loaded data: standardise, split, fit the teacher once and the
models that need it, and score the held-out training blocks that the thresholds are fitted on."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from service.bundle.manifest import ChannelStats
from training.windows.config import FITTED_KINDS, MODEL_KINDS, WindowsConfig
from training.windows.fit import BatchLosses, FitReport, fit
from training.windows.fitted import fit_fitted_model
from training.windows.models.anomaly_transformer import AnomalyTransformer
from training.windows.models.lstm_ae import LstmAutoencoder
from training.windows.models.transformer import TransformerReconstructor
from training.windows.objectives import distillation_loss, minimax_losses, reconstruction_loss
from training.windows.preprocess import (
    fit_channel_stats,
    standardise_part,
    training_windows,
    validation_split,
)
from training.windows.scoring import score_series, score_windows, scores_for
from training.windows.series import SensorData, SeriesPart


@dataclass(frozen=True)
class Prepared:
    """Standardised training data, split into training windows and held-out validation parts."""

    stats: list[ChannelStats]
    train_windows: NDArray[np.float32]
    validation_windows: NDArray[np.float32]
    validation_parts: list[SeriesPart]


@dataclass
class TrainedModel:
    kind: str
    model: nn.Module
    scoring: nn.Module
    report: FitReport
    # Wall time of this model's own training, and of the teacher it was distilled from; and the
    # process CPU time of its own training (all threads), which a busy machine does not inflate.
    seconds: float
    teacher_seconds: float = 0.0
    cpu_seconds: float = 0.0
    # The teacher's own training, for a distilled student's history.
    teacher_report: FitReport | None = None


def prepare(data: SensorData, config: WindowsConfig) -> Prepared:
    longest = max(part.values.shape[0] for part in data.train)
    if longest < 2 * config.window:
        raise ValueError(
            f"{data.name}: the longest training series has {longest} steps, fewer than two "
            f"windows of {config.window} (one to train on, one held out): choose a --window of "
            f"at most {longest // 2}"
        )
    stats = fit_channel_stats(data.train, data.channels)
    standardised = tuple(standardise_part(part, stats) for part in data.train)
    train_parts, validation_parts = validation_split(
        standardised, config.window, config.validation_fraction
    )
    validation_parts = [p for p in validation_parts if p.values.shape[0] >= config.window]
    if not validation_parts:
        raise ValueError(
            f"{data.name}: the training data is too short to hold out validation windows "
            f"of {config.window} steps"
        )
    return Prepared(
        stats=stats,
        train_windows=training_windows(train_parts, config.window, config.train_stride),
        validation_windows=training_windows(validation_parts, config.window, config.window),
        validation_parts=validation_parts,
    )


def build_model(kind: str, n_channels: int, config: WindowsConfig) -> nn.Module:
    """A freshly initialised model of a kind trained by gradient descent."""
    if kind == "teacher":
        return TransformerReconstructor(n_channels, config.window, config.teacher)
    if kind in ("student", "distilled_student"):
        return TransformerReconstructor(n_channels, config.window, config.student)
    if kind == "lstm_ae":
        return LstmAutoencoder(n_channels, config.lstm_hidden)
    if kind == "anomaly_transformer":
        size = config.anomaly_transformer
        return AnomalyTransformer(
            n_channels, config.window, size.d_model, size.n_heads, size.n_layers, size.d_ff
        )
    raise ValueError(f"unknown model {kind!r}; choose one of {MODEL_KINDS}")


def batch_losses(kind: str, config: WindowsConfig) -> BatchLosses:
    if kind == "distilled_student":

        def distilled(model: nn.Module, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
            x, teacher_output = batch
            return (
                distillation_loss(
                    model(x), x, teacher_output, config.distill_weight, config.cosine_axis
                ),
            )

        return distilled
    if kind == "anomaly_transformer":
        k = config.anomaly_transformer.k

        def minimax(model: nn.Module, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
            (x,) = batch
            reconstruction, series, prior = model(x)
            maximise, minimise = minimax_losses(reconstruction, x, series, prior, k)
            return maximise + minimise, maximise, minimise

        return minimax

    def plain(model: nn.Module, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        (x,) = batch
        return (reconstruction_loss(model(x), x),)

    return plain


def train_model(
    kind: str,
    prepared: Prepared,
    config: WindowsConfig,
    seed: int,
    teacher: TrainedModel | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> TrainedModel:
    """Train one model; a distilled student needs the trained `teacher`."""
    if kind in FITTED_KINDS:
        return _fit_without_epochs(kind, prepared, config, seed, log)
    torch.manual_seed(seed)
    n_channels = prepared.train_windows.shape[2]
    model = build_model(kind, n_channels, config)
    train = [torch.from_numpy(prepared.train_windows)]
    validation = [torch.from_numpy(prepared.validation_windows)]
    started = time.perf_counter()
    cpu_started = time.process_time()
    if kind == "distilled_student":
        if teacher is None:
            raise ValueError("a distilled student needs a trained teacher")
        # The teacher is frozen, so its outputs are computed once rather than every epoch.
        teacher_scoring = teacher.model.eval()
        for tensors in (train, validation):
            with torch.no_grad():
                outputs = [teacher_scoring(b) for b in torch.split(tensors[0], 256)]
            tensors.append(torch.cat(outputs))
    # Anomaly Transformer keeps its reference schedule: the learning rate halves every epoch.
    settings = dataclasses.replace(
        config.fit, seed=seed, halve_learning_rate=kind == "anomaly_transformer"
    )
    report = fit(model, batch_losses(kind, config), train, validation, settings, log, kind)
    return TrainedModel(
        kind=kind,
        model=model,
        scoring=scores_for(model, config.pooling_for(kind)),
        report=report,
        seconds=time.perf_counter() - started,
        teacher_seconds=teacher.seconds if kind == "distilled_student" and teacher else 0.0,
        cpu_seconds=time.process_time() - cpu_started,
        teacher_report=teacher.report if kind == "distilled_student" and teacher else None,
    )


def _fit_without_epochs(
    kind: str, prepared: Prepared, config: WindowsConfig, seed: int, log: Callable[[str], None]
) -> TrainedModel:
    started = time.perf_counter()
    cpu_started = time.process_time()
    model = fit_fitted_model(
        kind, prepared.train_windows, config, seed, prepared.validation_windows
    ).eval()
    seconds = time.perf_counter() - started
    log(f"{kind}: fitted on {prepared.train_windows.shape[0]} windows in {seconds:.1f} s")
    return TrainedModel(
        kind=kind,
        model=model,
        scoring=scores_for(model, config.pooling_for(kind)),
        report=FitReport(seconds=seconds),
        seconds=seconds,
        cpu_seconds=time.process_time() - cpu_started,
    )


def train_models(
    prepared: Prepared,
    config: WindowsConfig,
    kinds: Sequence[str],
    seed: int,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, TrainedModel]:
    """Train each of `kinds`; the teacher is trained once and shared by the distilled student."""
    trained: dict[str, TrainedModel] = {}
    if "distilled_student" in kinds or "teacher" in kinds:
        log("training the teacher")
        trained["teacher"] = train_model("teacher", prepared, config, seed, log=log)
    for kind in kinds:
        if kind in trained:
            continue
        log(f"training {kind}")
        trained[kind] = train_model(kind, prepared, config, seed, trained.get("teacher"), log)
    return {kind: trained[kind] for kind in kinds}


def validation_part_scores(
    trained: TrainedModel, prepared: Prepared, config: WindowsConfig
) -> list[NDArray[np.float64]]:
    """Per-step scores of each held-out training block, scored as the service scores series."""
    return [
        score_series(trained.scoring, part.values, config.window, config.stride)[0]
        for part in prepared.validation_parts
    ]


def validation_scores(
    trained: TrainedModel, prepared: Prepared, config: WindowsConfig
) -> NDArray[np.float64]:
    """The held-out training blocks' per-step scores, concatenated."""
    return np.concatenate(validation_part_scores(trained, prepared, config))


def training_scores(trained: TrainedModel, prepared: Prepared) -> NDArray[np.float32]:
    """Per-step scores of the training windows themselves (for diagnostics)."""
    return score_windows(trained.scoring, prepared.train_windows)[0].ravel()

"""The training loop shared by every model: Adam on shuffled mini-batches, early stopping on the
validation windows, the best epoch's weights kept."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

# Returns the losses for a batch: the first is backpropagated; early stopping needs every later
# one to improve (Anomaly Transformer watches both of its minimax losses), or the first if alone.
BatchLosses = Callable[[nn.Module, Sequence[torch.Tensor]], tuple[torch.Tensor, ...]]


@dataclass(frozen=True)
class FitSettings:
    max_epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 2
    seed: int = 0
    # Anomaly Transformer's reference schedule halves the learning rate after every epoch.
    halve_learning_rate: bool = False
    # A progress bar per model on stderr (the CLI's default; experiments keep it off).
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("max_epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"the learning rate must be positive, got {self.learning_rate}")


@dataclass
class FitReport:
    epochs_run: int = 0
    best_epoch: int = 0
    best_validation: tuple[float, ...] = ()
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def _batches(
    tensors: Sequence[torch.Tensor], batch_size: int, generator: torch.Generator | None
) -> Iterator[list[torch.Tensor]]:
    """Mini-batches in a shuffled order (or in order, without a generator)."""
    n = tensors[0].shape[0]
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for i in range(0, n, batch_size):
        yield [t[order[i : i + batch_size]] for t in tensors]


def evaluate_losses(
    model: nn.Module, losses: BatchLosses, tensors: Sequence[torch.Tensor], batch_size: int
) -> tuple[float, ...]:
    model.eval()
    totals: list[float] = []
    count = 0
    with torch.no_grad():
        for batch in _batches(tensors, batch_size, None):
            values = losses(model, batch)
            size = batch[0].shape[0]
            previous = totals or [0.0] * len(values)
            totals = [t + float(v) * size for t, v in zip(previous, values, strict=True)]
            count += size
    return tuple(t / count for t in totals)


def fit(
    model: nn.Module,
    losses: BatchLosses,
    train: Sequence[torch.Tensor],
    validation: Sequence[torch.Tensor],
    settings: FitSettings,
    log: Callable[[str], None] = lambda _: None,
    label: str = "training",
) -> FitReport:
    """Train `model` in place on `train` tensors (first axis = windows) and return what happened."""
    if train[0].shape[0] == 0 or validation[0].shape[0] == 0:
        raise ValueError("training and validation both need at least one window")
    generator = torch.Generator().manual_seed(settings.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    report = FitReport()
    best_state = copy.deepcopy(model.state_dict())
    best: tuple[float, ...] | None = None
    waited = 0
    started = time.perf_counter()
    progress = tqdm(
        range(1, settings.max_epochs + 1),
        desc=label,
        unit="epoch",
        disable=not settings.progress,
        leave=False,
    )
    for epoch in progress:
        model.train()
        total, count = 0.0, 0
        for batch in _batches(train, settings.batch_size, generator):
            optimiser.zero_grad()
            loss = losses(model, batch)[0]
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            total += float(loss.detach()) * batch[0].shape[0]
            count += batch[0].shape[0]
        scores = evaluate_losses(model, losses, validation, settings.batch_size)
        scores = scores[1:] or scores
        report.epochs_run = epoch
        report.history.append({"epoch": epoch, "train": total / count, "validation": scores[0]})
        shown = " / ".join(f"{s:.5g}" for s in scores)
        progress.set_postfix(loss=f"{total / count:.4g}", validation=shown)
        log(f"{label} epoch {epoch}: train loss {total / count:.5g}, validation loss {shown}")
        if best is None or all(s < b for s, b in zip(scores, best, strict=True)):
            best, waited = scores, 0
            best_state = copy.deepcopy(model.state_dict())
            report.best_epoch, report.best_validation = epoch, scores
        else:
            waited += 1
            if waited >= settings.patience:
                break
        if settings.halve_learning_rate:
            for group in optimiser.param_groups:
                group["lr"] = group["lr"] * 0.5
    progress.close()
    model.load_state_dict(best_state)
    model.eval()
    report.seconds = time.perf_counter() - started
    return report

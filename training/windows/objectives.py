"""Training losses: reconstruction, cosine distillation from a teacher (METHOD.md part 2), and
Anomaly Transformer's minimax association-discrepancy losses."""

from __future__ import annotations

import torch
from torch.nn import functional

from training.windows.models.anomaly_transformer import association_kl

COSINE_AXES = ("step", "window")


def reconstruction_loss(reconstruction: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return functional.mse_loss(reconstruction, x)


def cosine_disagreement(
    student: torch.Tensor, teacher: torch.Tensor, axis: str = "step"
) -> torch.Tensor:
    """Mean of 1 - cos(student, teacher) over [N, window, channels] outputs: per time step across
    channels ('step'), or per window over all its values ('window')."""
    if axis == "step":
        similarity = functional.cosine_similarity(student, teacher, dim=-1, eps=1e-8)
    elif axis == "window":
        similarity = functional.cosine_similarity(
            student.flatten(1), teacher.flatten(1), dim=-1, eps=1e-8
        )
    else:
        raise ValueError(f"cosine axis must be one of {COSINE_AXES}, got {axis!r}")
    return (1.0 - similarity).mean()


def distillation_loss(
    reconstruction: torch.Tensor,
    x: torch.Tensor,
    teacher_output: torch.Tensor,
    weight: float,
    axis: str = "step",
) -> torch.Tensor:
    """L = L_reconstruction + lambda * (1 - cos(O_teacher, O_student))."""
    return reconstruction_loss(reconstruction, x) + weight * cosine_disagreement(
        reconstruction, teacher_output, axis
    )


def association_losses(
    series: list[torch.Tensor], prior: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anomaly Transformer's (series_loss, prior_loss), each averaged over layers. series_loss
    moves only the series association (prior detached), prior_loss only the prior."""
    series_loss = torch.zeros(())
    prior_loss = torch.zeros(())
    for s, p in zip(series, prior, strict=True):
        series_loss = series_loss + (
            association_kl(s, p.detach()).mean() + association_kl(p.detach(), s).mean()
        )
        prior_loss = prior_loss + (
            association_kl(p, s.detach()).mean() + association_kl(s.detach(), p).mean()
        )
    return series_loss / len(series), prior_loss / len(series)


def minimax_losses(
    reconstruction: torch.Tensor,
    x: torch.Tensor,
    series: list[torch.Tensor],
    prior: list[torch.Tensor],
    k: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rec - k * series_loss, rec + k * prior_loss): the maximise and minimise phases. The
    reference code backpropagates both into the same gradients before one optimiser step, which
    is what backpropagating their sum does."""
    rec = reconstruction_loss(reconstruction, x)
    series_loss, prior_loss = association_losses(series, prior)
    return rec - k * series_loss, rec + k * prior_loss

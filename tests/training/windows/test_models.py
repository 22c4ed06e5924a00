"""The models' shapes and the losses' defining properties."""

from __future__ import annotations

import pytest
import torch

from training.windows.config import TRAINED_KINDS, AnomalyTransformerSize, WindowsConfig
from training.windows.models.anomaly_transformer import AnomalyTransformer, discrepancy_score
from training.windows.models.transformer import TransformerSize
from training.windows.objectives import (
    association_losses,
    cosine_disagreement,
    distillation_loss,
    minimax_losses,
)
from training.windows.pipeline import build_model

SMALL = WindowsConfig(
    window=16,
    stride=8,
    teacher=TransformerSize(d_model=16, n_heads=2, n_layers=2, d_ff=32),
    student=TransformerSize(d_model=8, n_heads=2, n_layers=1, d_ff=16),
    lstm_hidden=8,
    anomaly_transformer=AnomalyTransformerSize(d_model=8, n_heads=2, n_layers=2, d_ff=8),
)


@pytest.mark.parametrize("kind", TRAINED_KINDS)
def test_every_model_reconstructs_windows_of_the_input_shape(kind: str) -> None:
    torch.manual_seed(0)
    model = build_model(kind, 5, SMALL).eval()
    x = torch.randn(3, 16, 5)
    out = model(x)
    reconstruction = out[0] if kind == "anomaly_transformer" else out
    assert reconstruction.shape == (3, 16, 5)


def test_the_student_is_smaller_than_the_teacher() -> None:
    sizes = {
        kind: sum(p.numel() for p in build_model(kind, 5, WindowsConfig()).parameters())
        for kind in ("teacher", "student")
    }
    assert sizes["student"] < sizes["teacher"] / 3


def test_cosine_disagreement_ignores_scale_and_sees_direction() -> None:
    teacher = torch.randn(4, 10, 6)
    assert float(cosine_disagreement(3.0 * teacher, teacher)) == pytest.approx(0.0, abs=1e-6)
    assert float(cosine_disagreement(-teacher, teacher)) == pytest.approx(2.0, abs=1e-6)
    assert float(cosine_disagreement(-teacher, teacher, "window")) == pytest.approx(2.0, abs=1e-6)
    # Flipping the sign of one step changes the per-step mean by 2/10, not the other steps.
    flipped = teacher.clone()
    flipped[:, 0] *= -1
    assert float(cosine_disagreement(flipped, teacher)) == pytest.approx(0.2, abs=1e-5)
    with pytest.raises(ValueError, match="cosine axis"):
        cosine_disagreement(teacher, teacher, "channel")


def test_distillation_loss_is_reconstruction_plus_lambda_times_disagreement() -> None:
    x = torch.randn(2, 8, 3)
    student = torch.randn(2, 8, 3)
    teacher = torch.randn(2, 8, 3)
    expected = torch.mean((student - x) ** 2) + 0.5 * cosine_disagreement(student, teacher)
    assert float(distillation_loss(student, x, teacher, 0.5)) == pytest.approx(float(expected))


def test_prior_association_is_a_distribution_centred_on_each_step() -> None:
    torch.manual_seed(0)
    model = AnomalyTransformer(3, 12, d_model=8, n_heads=2, n_layers=2, d_ff=8).eval()
    _, series, prior = model(torch.randn(2, 12, 3))
    assert len(series) == len(prior) == 2
    for s, p in zip(series, prior, strict=True):
        assert s.shape == p.shape == (2, 2, 12, 12)
        torch.testing.assert_close(p.sum(-1), torch.ones(2, 2, 12))
        torch.testing.assert_close(s.sum(-1), torch.ones(2, 2, 12))
        # A Gaussian over |i - j|: each row peaks on its own step.
        assert torch.equal(p.argmax(-1)[0, 0], torch.arange(12))
    score = discrepancy_score(series, prior)
    torch.testing.assert_close(score.sum(-1), torch.ones(2))


def test_minimax_phases_move_only_their_own_association() -> None:
    torch.manual_seed(0)
    model = AnomalyTransformer(3, 12, d_model=8, n_heads=2, n_layers=1, d_ff=8)
    x = torch.randn(4, 12, 3)
    reconstruction, series, prior = model(x)
    series_loss, prior_loss = association_losses(series, prior)
    sigma = model.layers[0].attention.sigma.weight  # type: ignore[union-attr,index]
    query = model.layers[0].attention.attention.qkv.weight  # type: ignore[union-attr,index]
    # series_loss reaches the attention weights only; prior_loss reaches the prior's sigma only.
    (series_grad_sigma,) = torch.autograd.grad(
        series_loss, [sigma], retain_graph=True, allow_unused=True
    )
    assert series_grad_sigma is None
    (prior_grad_query,) = torch.autograd.grad(
        prior_loss, [query], retain_graph=True, allow_unused=True
    )
    assert prior_grad_query is None
    maximise, minimise = minimax_losses(reconstruction, x, series, prior, k=3.0)
    rec = torch.mean((reconstruction - x) ** 2)
    assert maximise.item() == pytest.approx((rec - 3.0 * series_loss).item(), rel=1e-5)
    assert minimise.item() == pytest.approx((rec + 3.0 * prior_loss).item(), rel=1e-5)

"""The exported ONNX graph scores exactly like the torch model, standardises its own input, and
keeps the bundle contract (input `blocks`, outputs `score` and `band_error`, dynamic batch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.audio.backbones import Backbone, backbone_recipe
from training.audio.export import export_onnx
from training.audio.model import Autoencoder, BlockScore, BlockScorer


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _scorer(backbone: Backbone, seed: int = 0, score: BlockScore = "reconstruction") -> BlockScorer:
    features = backbone_recipe(backbone).features
    torch.manual_seed(seed)
    scorer = BlockScorer(features.n_mels, features.frames_per_block, score)
    training = np.random.default_rng(seed).normal(-45.0, 12.0, (200, features.block_size))
    scorer.set_standardisation(training.astype(np.float32))
    if score == "latent_knn":
        scorer.set_memory_bank(training.astype(np.float32), seed)
    return scorer.eval()


def test_autoencoder_has_the_papers_shape() -> None:
    layers = [m for m in Autoencoder(4096).layers if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in layers] == [
        (4096, 128),
        (128, 128),
        (128, 128),
        (128, 128),
        (128, 8),
        (8, 128),
        (128, 128),
        (128, 128),
        (128, 128),
        (128, 4096),
    ]
    relus = [m for m in Autoencoder(4096).layers if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 9  # after every layer but the output


def test_score_is_the_mean_of_the_band_errors_of_the_standardised_block() -> None:
    scorer = _scorer("context")
    blocks = torch.from_numpy(np.random.default_rng(1).normal(-45, 12, (6, 320)).astype(np.float32))
    with torch.no_grad():
        score, band_error = scorer(blocks)
        standard = (blocks - scorer.mean) / scorer.std
        squared = (scorer.autoencoder(standard) - standard) ** 2
    assert band_error.shape == (6, 64)
    torch.testing.assert_close(band_error, squared.reshape(6, 64, 5).mean(dim=2))
    torch.testing.assert_close(score, band_error.mean(dim=1))


def test_standardisation_lives_inside_the_model() -> None:
    """Shifting the training data and the input by the same dB leaves the scores unchanged."""
    data = np.random.default_rng(2).normal(-45, 12, (300, 320)).astype(np.float32)
    plain, shifted = _scorer("context"), _scorer("context")
    plain.set_standardisation(data)
    shifted.set_standardisation(data + 20.0)
    x = torch.from_numpy(data[:10])
    with torch.no_grad():
        torch.testing.assert_close(plain(x)[0], shifted(x + 20.0)[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("backbone", "score"),
    [
        ("block", "reconstruction"),
        ("context", "reconstruction"),
        ("block", "quiet_bands"),
        ("context", "latent_knn"),
    ],
)
def test_onnx_runtime_scores_equal_torch_scores(
    tmp_path: Path, backbone: Backbone, score: BlockScore
) -> None:
    scorer = _scorer(backbone, score=score)
    path = export_onnx(scorer, tmp_path / "model.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # weights inside, no side file
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (blocks_input,) = session.get_inputs()
    assert blocks_input.name == "blocks"
    assert blocks_input.type == "tensor(float)"
    assert blocks_input.shape[1] == scorer.n_mels * scorer.frames_per_block
    assert [o.name for o in session.get_outputs()] == ["score", "band_error"]
    rng = np.random.default_rng(3)
    for batch in (1, 7, 300):
        blocks = rng.normal(-45, 12, (batch, blocks_input.shape[1])).astype(np.float32)
        onnx_score, onnx_band = session.run(["score", "band_error"], {"blocks": blocks})
        with torch.no_grad():
            torch_score, torch_band = scorer(torch.from_numpy(blocks))
        assert onnx_score.shape == (batch,)
        assert onnx_band.shape == (batch, scorer.n_mels)
        np.testing.assert_allclose(onnx_score, torch_score.numpy(), rtol=1e-5)
        np.testing.assert_allclose(onnx_band, torch_band.numpy(), rtol=1e-5, atol=1e-7)

"""The torch weights kept beside model.onnx rebuild a model that scores exactly like the one
exported, standardisation and memory bank included, and refuse to load into another shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training.audio.backbones import backbone_recipe
from training.audio.export import (
    ARCHITECTURE_FILE,
    WEIGHTS_FILE,
    TorchWeightsError,
    export_torch,
    load_torch,
)
from training.audio.model import BlockScore, BlockScorer


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _trained_looking(score: BlockScore, seed: int = 0) -> tuple[BlockScorer, np.ndarray]:
    features = backbone_recipe("context").features
    torch.manual_seed(seed)
    scorer = BlockScorer(features.n_mels, features.frames_per_block, score)
    data = np.random.default_rng(seed).normal(-45.0, 12.0, (200, features.block_size))
    data = data.astype(np.float32)
    scorer.set_standardisation(data)
    if score == "latent_knn":
        scorer.set_memory_bank(data, seed)
    return scorer.eval(), data


@pytest.mark.parametrize("score", ["reconstruction", "latent_knn"])
def test_saved_weights_rebuild_the_same_scores(tmp_path: Path, score: BlockScore) -> None:
    scorer, data = _trained_looking(score)
    export_torch(scorer, tmp_path)
    rebuilt = load_torch(tmp_path)
    assert not rebuilt.training
    x = torch.from_numpy(data[:20] + 3.0)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x)[0], scorer(x)[0], rtol=0, atol=0)
        torch.testing.assert_close(rebuilt(x)[1], scorer(x)[1], rtol=0, atol=0)
    assert json.loads((tmp_path / ARCHITECTURE_FILE).read_text())["score"] == score


def test_a_bundle_without_weights_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(TorchWeightsError, match="auscult train audio"):
        load_torch(tmp_path)


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    scorer, _ = _trained_looking("reconstruction")
    export_torch(scorer, tmp_path)
    config = json.loads((tmp_path / ARCHITECTURE_FILE).read_text())
    (tmp_path / ARCHITECTURE_FILE).write_text(json.dumps({**config, "hidden_units": 64}))
    with pytest.raises(TorchWeightsError, match="hidden_units"):
        load_torch(tmp_path)


def test_weights_that_do_not_fit_the_described_shape_are_refused(tmp_path: Path) -> None:
    scorer, _ = _trained_looking("reconstruction")
    export_torch(scorer, tmp_path)
    config = json.loads((tmp_path / ARCHITECTURE_FILE).read_text())
    (tmp_path / ARCHITECTURE_FILE).write_text(json.dumps({**config, "n_mels": 32}))
    with pytest.raises(TorchWeightsError, match=WEIGHTS_FILE):
        load_torch(tmp_path)

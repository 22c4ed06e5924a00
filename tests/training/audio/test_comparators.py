"""The paper's comparators (USAD, Deep SVDD, DevNet) as exported bundles: ONNX Runtime scores them
as torch does, they score far-from-normal blocks higher, and one trained through the pipeline
is served by a real server unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch

from service.bundle.loader import load_bundle
from service.config import Settings
from service.scoring.audio import AudioScorer
from tests.server import running_server
from tests.service.clips import encode
from tests.training.audio.small_pump import write_small_pump
from training.audio.clips import iter_clips
from training.audio.comparators import (
    COMPARATORS,
    Comparator,
    deviation_loss,
    train_comparator,
)
from training.audio.export import export_onnx
from training.audio.model import BlockScorer
from training.audio.pipeline import AudioTrainingConfig, AudioTrainingResult, train_audio_bundle
from training.audio.stages import FitSettings, TrainingBlocks, block_scores

N_MELS, FRAMES = 16, 4
FIT = FitSettings(max_epochs=8, patience=3, batch_size=64, quiet=True)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _blocks(seed: int, n: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Normal blocks share one spectral shape; anomalies lift it by `shift` dB.
    shape = np.linspace(-60, -20, N_MELS).repeat(FRAMES)
    return (shape + shift + rng.normal(0, 2, (n, N_MELS * FRAMES))).astype(np.float32)


def _trained(kind: Comparator) -> BlockScorer:
    blocks = TrainingBlocks(
        train_normal=_blocks(0, 400),
        validation_normal=_blocks(1, 80),
        train_anomalous=_blocks(2, 40, shift=12.0),
        validation_anomalous=_blocks(3, 10, shift=12.0),
    )
    return train_comparator(kind, blocks, N_MELS, FRAMES, 0.99, FIT, FIT, seed=0).scorer


@pytest.mark.parametrize("kind", COMPARATORS)
def test_onnx_scores_equal_torch_and_anomalies_score_higher(
    tmp_path: Path, kind: Comparator
) -> None:
    scorer = _trained(kind)
    normal, anomalous = _blocks(4, 50), _blocks(5, 50, shift=12.0)
    assert np.median(block_scores(scorer, anomalous)) > np.median(block_scores(scorer, normal))
    path = export_onnx(scorer, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7, 100):
        blocks = np.concatenate([normal, anomalous])[:batch]
        score, band = session.run(["score", "band_error"], {"blocks": blocks})
        with torch.no_grad():
            torch_score, torch_band = scorer(torch.from_numpy(blocks))
        assert band.shape == (batch, N_MELS)
        np.testing.assert_allclose(score, torch_score.numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(band, torch_band.numpy(), rtol=1e-5, atol=1e-7)


def test_deviation_loss_pulls_normal_to_zero_and_pushes_anomalies_past_the_margin() -> None:
    raw = torch.tensor([0.0, -2.0, 5.0, 1.0])
    y = torch.tensor([0, 0, 1, 1])
    # normal: |0| + |-2|; anomalies: max(0, 5 - 5) + max(0, 5 - 1)
    assert deviation_loss(raw, y).item() == pytest.approx((0 + 2 + 0 + 4) / 4)


def test_devnet_without_labelled_anomalies_is_refused() -> None:
    blocks = TrainingBlocks(_blocks(0, 50), _blocks(1, 10), _blocks(2, 0), _blocks(3, 0))
    with pytest.raises(ValueError, match="labelled anomalous"):
        train_comparator("devnet", blocks, N_MELS, FRAMES, 0.99, FIT, None, seed=0)


@pytest.fixture(scope="module")
def usad_bundle(tmp_path_factory: pytest.TempPathFactory) -> AudioTrainingResult:
    root = write_small_pump(tmp_path_factory.mktemp("dcase"), "shifted_harmonics")
    config = AudioTrainingConfig(
        data=root,
        out=tmp_path_factory.mktemp("bundles") / "usad",
        labeled_anomalies=2,
        backbone="context",
        model="usad",
        stage1=FitSettings(max_epochs=6, patience=3, batch_size=128, quiet=True),
        seed=3,
    )
    return train_audio_bundle(config)


@pytest.fixture(scope="module")
def served(usad_bundle: AudioTrainingResult) -> Iterator[httpx.Client]:
    settings = Settings(models_dir=usad_bundle.bundle_dir.parent, reload_poll_seconds=0)
    with running_server(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


def test_a_comparator_bundle_is_served_unchanged(
    usad_bundle: AudioTrainingResult, served: httpx.Client
) -> None:
    manifest = usad_bundle.manifest
    assert manifest.training.block_score == "usad"
    assert manifest.description.startswith("USAD (context backbone)")
    clip = next(iter(iter_clips(usad_bundle.split.test, 16000, None)))
    response = served.post(
        f"/v1/models/{manifest.name}/score",
        content=encode(clip.samples, subtype="FLOAT"),
        headers={"Content-Type": "audio/wav"},
    )
    assert response.status_code == 200, response.text
    expected = AudioScorer(load_bundle(usad_bundle.bundle_dir)).score_samples(clip.samples)
    assert response.json()["score"] == pytest.approx(expected.clip_score, rel=1e-5)

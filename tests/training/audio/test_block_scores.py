"""The served block scores: `quiet_bands` ignores error confined to half the mel bands,
`latent_knn` is the distance to the nearest codes of its memory bank; a bundle trained with
either records it, serves it unchanged through a real server, and scores anomalies higher."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import torch

from service.bundle.loader import load_bundle
from service.bundle.manifest import AudioManifest
from service.config import Settings
from service.scoring.audio import AudioScorer
from tests.server import running_server
from tests.service.clips import encode
from tests.training.audio.small_pump import small_config, write_small_pump
from training.audio.clips import iter_clips
from training.audio.datasets import Recording
from training.audio.model import KNN_NEIGHBOURS, BlockScore, BlockScorer
from training.audio.pipeline import AudioTrainingResult, train_audio_bundle
from training.audio.stages import FitSettings, train_stage2

N_MELS, FRAMES = 8, 4


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _identity_error_scorer(score: str) -> BlockScorer:
    """A scorer whose autoencoder outputs zeros, so a block's band error is the mean square of
    its (unstandardised: mean 0, std 1) values in that band."""
    scorer = BlockScorer(N_MELS, FRAMES, score)  # type: ignore[arg-type]
    with torch.no_grad():
        for parameter in scorer.autoencoder.parameters():
            parameter.zero_()
    return scorer.eval()


def _block(loud_bands: range, level: float) -> torch.Tensor:
    block = torch.zeros(N_MELS, FRAMES)
    block[list(loud_bands)] = level
    return block.reshape(1, -1)


def test_quiet_bands_ignore_error_confined_to_half_the_bands() -> None:
    background = _block(range(N_MELS // 2), 3.0)  # another machine, loud in half the bands
    fault = _block(range(N_MELS), 1.0)  # the machine itself, changed in every band
    with torch.no_grad():
        quiet = _identity_error_scorer("quiet_bands")
        full = _identity_error_scorer("reconstruction")
        assert quiet(background)[0].item() == pytest.approx(0.0)
        assert quiet(fault)[0].item() == pytest.approx(1.0)
        assert full(background)[0].item() == pytest.approx(4.5)
        assert full(fault)[0].item() == pytest.approx(1.0)
        # Both report the same per-band errors; only the block score differs.
        torch.testing.assert_close(quiet(background)[1], full(background)[1])
        # Training minimises the error over the whole block whatever is served.
        assert quiet.reconstruction_error(background).item() == pytest.approx(4.5)


def _knn_scorer(bank_blocks: np.ndarray) -> BlockScorer:
    torch.manual_seed(0)
    scorer = BlockScorer(N_MELS, FRAMES, "latent_knn")
    scorer.set_standardisation(bank_blocks)
    scorer.set_memory_bank(bank_blocks, seed=0)
    return scorer.eval()


def test_latent_knn_is_the_distance_to_the_nearest_codes_of_the_bank() -> None:
    rng = np.random.default_rng(0)
    normal = rng.normal(0, 1, (50, N_MELS * FRAMES)).astype(np.float32)
    scorer = _knn_scorer(normal)
    far = torch.from_numpy(normal[:5] + 40.0)
    with torch.no_grad():
        latent = scorer.autoencoder.encode((far - scorer.mean) / scorer.std)
        distances = torch.cdist(latent, scorer.bank) ** 2
        expected = distances.sort(dim=1).values[:, :KNN_NEIGHBOURS].mean(dim=1).sqrt()
        torch.testing.assert_close(scorer(far)[0], expected, rtol=1e-4, atol=1e-5)
        # Blocks far from every normal one score higher than the normal ones themselves.
        assert scorer(far)[0].min() > scorer(torch.from_numpy(normal))[0].max()


def test_a_saved_memory_bank_loads_whatever_its_size() -> None:
    normal = np.random.default_rng(1).normal(0, 1, (30, N_MELS * FRAMES)).astype(np.float32)
    scorer = _knn_scorer(normal)
    reloaded = BlockScorer(N_MELS, FRAMES, "latent_knn")
    reloaded.load_state_dict(scorer.state_dict())
    assert reloaded.bank.shape == (30, 8)
    blocks = torch.from_numpy(normal[:4] * 2)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(blocks)[0], scorer(blocks)[0])


def test_stage_2_leaves_a_memory_bank_of_the_new_codes() -> None:
    """Stage 2 (and `auscult retrain`'s fine-tuning, which runs it) moves the codes; the bank
    must follow, or distances would be measured to codes the model no longer gives."""
    rng = np.random.default_rng(2)
    normal = rng.normal(0, 1, (64, N_MELS * FRAMES)).astype(np.float32)
    anomalous = rng.normal(3, 1, (8, N_MELS * FRAMES)).astype(np.float32)
    scorer = _knn_scorer(normal)
    fit = FitSettings(max_epochs=3, patience=3, batch_size=16, quiet=True)
    train_stage2(scorer, normal, anomalous, normal, anomalous, 1.0, "hinge", fit, torch.Generator())
    with torch.no_grad():
        codes = scorer.autoencoder.encode((torch.from_numpy(normal) - scorer.mean) / scorer.std)
        exact = "donot_use_mm_for_euclid_dist"
        nearest = torch.cdist(scorer.bank, codes, compute_mode=exact).min(dim=1).values
    assert nearest.max().item() < 1e-4


def test_latent_knn_without_a_memory_bank_refuses_to_score() -> None:
    with pytest.raises(RuntimeError, match="set_memory_bank"):
        BlockScorer(N_MELS, FRAMES, "latent_knn")(torch.zeros(1, N_MELS * FRAMES))


def test_an_unknown_block_score_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown block score"):
        BlockScorer(N_MELS, FRAMES, "loudest_band")  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["quiet_bands", "latent_knn"])
def trained(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AudioTrainingResult:
    score: BlockScore = request.param
    # Shifted harmonics change many bands; quiet_bands would miss a lone tone (see
    # docs/RESULTS.md), which the unit test above shows by construction.
    root = write_small_pump(tmp_path_factory.mktemp("dcase"), "shifted_harmonics")
    out = tmp_path_factory.mktemp("bundles") / f"pump-{score}"
    return train_audio_bundle(small_config(root, out, score=score))


def _test_recordings(result: AudioTrainingResult, anomalous: bool) -> list[Recording]:
    return [r for r in result.split.test if r.is_anomaly == anomalous]


def test_a_bundle_records_its_score_and_ranks_anomalies_higher(
    trained: AudioTrainingResult,
) -> None:
    assert trained.manifest.training.block_score in ("quiet_bands", "latent_knn")
    scorer = AudioScorer(load_bundle(trained.bundle_dir))

    def mean_score(anomalous: bool) -> float:
        clips = iter_clips(_test_recordings(trained, anomalous), 16000, None)
        return float(np.mean([scorer.score_samples(c.samples).clip_score for c in clips]))

    assert mean_score(anomalous=True) > mean_score(anomalous=False)
    assert trained.evaluation.auc is not None
    assert trained.evaluation.auc > 0.5


@pytest.fixture(scope="module")
def served(trained: AudioTrainingResult) -> Iterator[httpx.Client]:
    settings = Settings(models_dir=trained.bundle_dir.parent, reload_poll_seconds=0)
    with running_server(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


def test_a_real_server_serves_the_score_unchanged(
    trained: AudioTrainingResult, served: httpx.Client
) -> None:
    bundle = load_bundle(trained.bundle_dir)
    assert isinstance(bundle.manifest, AudioManifest)
    clip = next(iter(iter_clips(_test_recordings(trained, True), 16000, None)))
    response = served.post(
        f"/v1/models/{bundle.manifest.name}/score",
        content=encode(clip.samples, subtype="FLOAT"),  # exact samples, as trained on
        headers={"Content-Type": "audio/wav"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = AudioScorer(bundle).score_samples(clip.samples).clip_score
    assert body["score"] == pytest.approx(expected, rel=1e-5)
    worst = body["worst_block"]
    if trained.manifest.training.block_score == "quiet_bands":
        lowest_half = sorted(worst["band_error"])[: len(worst["band_error"]) // 2]
        assert worst["score"] == pytest.approx(np.mean(lowest_half), rel=1e-5)
    else:  # the distance in the latent space is not the reconstruction error
        assert worst["score"] != pytest.approx(np.mean(worst["band_error"]), rel=1e-3)

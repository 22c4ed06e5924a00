"""AudioScorer on real ONNX bundles: block scores, clip score, worst block and its band error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.bundle.loader import LoadedBundle, load_bundle
from service.bundle.manifest import AudioManifest
from service.features.logmel import AudioTooShortError, mel_band_centres_hz
from service.scoring.audio import AudioScorer
from service.scoring.decision import Decision
from tests.bundle_factory import machine_sound, make_audio_bundle, make_windows_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> LoadedBundle:
    return load_bundle(make_audio_bundle(tmp_path_factory.mktemp("models") / "fan"))


def test_clip_score_is_the_mean_of_block_scores(bundle: LoadedBundle) -> None:
    scorer = AudioScorer(bundle)
    clip = machine_sound(5.0, seed=11)
    result = scorer.score_samples(clip)
    n_blocks = (1 + clip.size // 512) // 32
    assert result.block_scores.shape == (n_blocks,)
    assert result.clip_score == pytest.approx(float(result.block_scores.mean()), rel=1e-6)
    block = 32 * 512 / 16000
    np.testing.assert_allclose(result.block_start_s, np.arange(n_blocks) * block)
    np.testing.assert_allclose(result.block_end_s, (np.arange(n_blocks) + 1) * block)
    direct = bundle.run({"blocks": scorer.extractor.clip_blocks(clip)})
    np.testing.assert_allclose(result.block_scores, direct["score"], rtol=1e-6)


def test_the_worst_block_locates_an_anomaly_and_its_bands(bundle: LoadedBundle) -> None:
    scorer = AudioScorer(bundle)
    clip = machine_sound(8.0, seed=12)
    whine = machine_sound(8.0, seed=12, anomalous=True)
    block_samples = 32 * 512
    # only the fifth block's span holds the anomaly
    clip[4 * block_samples + 2048 : 5 * block_samples - 2048] = whine[
        4 * block_samples + 2048 : 5 * block_samples - 2048
    ]
    result = scorer.score_samples(clip)
    assert result.worst_block == 4
    assert result.block_start_s[4] <= 4 * block_samples / 16000 < result.block_end_s[4]
    assert result.worst_band_error.shape == (128,)
    assert isinstance(bundle.manifest, AudioManifest)
    decision = Decision(bundle.manifest.block_decision.threshold)
    np.testing.assert_array_equal(np.flatnonzero(decision.anomalies(result.block_scores)), [4])
    # the 2.6 kHz whine lands in the mel bands around 2.6 kHz
    band_hz = mel_band_centres_hz(bundle.manifest.features)
    worst_band_hz = band_hz[int(np.argmax(result.worst_band_error))]
    assert 2400 < worst_band_hz < 2800


@pytest.mark.parametrize("max_batch", [1, 3, 1000])
def test_batching_does_not_change_the_scores(bundle: LoadedBundle, max_batch: int) -> None:
    blocks = AudioScorer(bundle).extractor.clip_blocks(machine_sound(10.0, seed=13), 8)
    reference_scores, reference_bands = AudioScorer(bundle, max_batch=10_000).score_blocks(blocks)
    scores, bands = AudioScorer(bundle, max_batch=max_batch).score_blocks(blocks)
    np.testing.assert_allclose(scores, reference_scores, rtol=1e-5)
    np.testing.assert_allclose(bands, reference_bands, rtol=1e-5)


def test_a_clip_without_a_complete_block_is_refused(bundle: LoadedBundle) -> None:
    with pytest.raises(AudioTooShortError, match=r"clip is 0\.50 s long"):
        AudioScorer(bundle).score_samples(machine_sound(0.5))


def test_a_clip_score_of_no_blocks_is_refused(bundle: LoadedBundle) -> None:
    with pytest.raises(ValueError, match="at least one block, got none"):
        AudioScorer(bundle).score_clip_blocks(np.zeros((0, 4096), dtype=np.float32))


def test_blocks_of_the_wrong_width_are_refused(bundle: LoadedBundle) -> None:
    with pytest.raises(ValueError, match=r"blocks must have shape \(n, 4096\)"):
        AudioScorer(bundle).score_blocks(np.zeros((2, 100), dtype=np.float32))


def test_a_windows_bundle_is_refused(tmp_path: Path) -> None:
    windows = load_bundle(make_windows_bundle(tmp_path / "pump"))
    with pytest.raises(TypeError, match="is a windows bundle; AudioScorer needs an audio bundle"):
        AudioScorer(windows)

"""The bundles in models/ load, state what they were trained on and give the README's verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.audio.decode import load_audio
from service.bundle.loader import load_bundle
from service.bundle.manifest import AudioManifest
from service.scoring.audio import AudioScorer
from service.scoring.decision import Decision
from tests.realdata import PROJECT_ROOT, real_data

MODELS = PROJECT_ROOT / "models"
BUNDLES = sorted(path for path in MODELS.iterdir() if (path / "manifest.json").exists())


def test_the_service_has_default_models() -> None:
    assert BUNDLES, f"no bundles in {MODELS}: `make serve` would serve nothing"


@pytest.mark.parametrize("bundle_dir", BUNDLES, ids=[path.name for path in BUNDLES])
def test_a_default_bundle_loads_and_states_its_training_data(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    manifest = bundle.manifest
    assert manifest.name == bundle_dir.name
    assert manifest.training.data.strip()
    assert manifest.training.n_normal > 0
    assert manifest.evaluation is not None
    assert manifest.evaluation.n_normal > 0


@pytest.mark.parametrize(
    ("recording", "anomalous"),
    [("normal/ccw_f8_5.flac", False), ("2_broken/1010_ccw_f8_1.flac", True)],
)
def test_the_readme_example_flights_get_their_verdicts(recording: str, anomalous: bool) -> None:
    path = real_data("audio/uav_propeller") / recording
    bundle = load_bundle(MODELS / "uav-propeller")
    assert isinstance(bundle.manifest, AudioManifest)
    samples = load_audio(path, bundle.manifest.features.sample_rate)
    score = AudioScorer(bundle).score_samples(samples).clip_score
    assert Decision(bundle.manifest.clip_decision.threshold)(score).anomaly is anomalous

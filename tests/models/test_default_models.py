"""The bundles this repository ships in models/ load, state what they were trained on and give
the README's verdicts. They are named here one by one: a bundle a user trains into models/ (as
the docs show) is theirs, and the suite neither checks it nor breaks on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from service.audio.decode import load_audio
from service.bundle.loader import load_bundle
from service.bundle.manifest import AudioManifest
from service.scoring.audio import AudioScorer
from service.scoring.decision import Decision
from tests.bundle_factory import make_windows_bundle, write_broken_bundle
from tests.realdata import PROJECT_ROOT, real_data
from tests.server import serve_process

MODELS = PROJECT_ROOT / "models"
SHIPPED = ("uav-propeller",)


def shipped_bundles(models: Path) -> list[Path]:
    """The shipped bundles' folders under `models`, whatever else is there."""
    return [models / name for name in SHIPPED]


def check_shipped_bundle(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    manifest = bundle.manifest
    assert manifest.name == bundle_dir.name
    assert manifest.training.data.strip()
    assert manifest.training.n_normal > 0
    assert manifest.evaluation is not None
    assert manifest.evaluation.n_normal > 0


def test_the_service_ships_its_default_models() -> None:
    missing = [p.name for p in shipped_bundles(MODELS) if not (p / "manifest.json").is_file()]
    assert not missing, f"{missing} missing from {MODELS}: `make serve` would not serve them"


@pytest.mark.parametrize("bundle_dir", shipped_bundles(MODELS), ids=SHIPPED)
def test_a_shipped_bundle_loads_and_states_its_training_data(bundle_dir: Path) -> None:
    check_shipped_bundle(bundle_dir)


def test_a_users_own_bundles_beside_the_shipped_ones_change_nothing(tmp_path: Path) -> None:
    models = tmp_path / "models"
    for bundle_dir in shipped_bundles(MODELS):
        shutil.copytree(bundle_dir, models / bundle_dir.name)
    # What a user may add: a bundle named unlike its folder, with no evaluation, and one
    # still being copied.
    make_windows_bundle(models / "my-pump", name="pump")
    write_broken_bundle(models / "half-copied", "manifest_not_json", name="half")
    bundles = shipped_bundles(models)
    assert [p.name for p in bundles] == list(SHIPPED)
    for bundle_dir in bundles:
        check_shipped_bundle(bundle_dir)


README_FLIGHTS = [("normal/ccw_f8_5.flac", False), ("2_broken/1010_ccw_f8_1.flac", True)]


@pytest.mark.parametrize(("recording", "anomalous"), README_FLIGHTS)
def test_the_readme_example_flights_get_their_verdicts(recording: str, anomalous: bool) -> None:
    path = real_data("audio/uav_propeller") / recording
    bundle = load_bundle(MODELS / "uav-propeller")
    assert isinstance(bundle.manifest, AudioManifest)
    samples = load_audio(path, bundle.manifest.features.sample_rate)
    score = AudioScorer(bundle).score_samples(samples).clip_score
    assert Decision(bundle.manifest.clip_decision.threshold)(score).anomaly is anomalous


def test_the_served_default_point_gives_the_readme_verdicts(tmp_path: Path) -> None:
    """`make serve` applies the bundle's default operating point (false_alarm_rate): the README's
    flights get their verdicts at its thresholds, and the intact flight, which had 11 of its 75
    blocks flagged under the old thresholds, has few flagged blocks."""
    data = real_data("audio/uav_propeller")
    manifest = load_bundle(MODELS / "uav-propeller").manifest
    assert isinstance(manifest, AudioManifest)
    assert manifest.default_operating_point == "false_alarm_rate"
    clip_threshold, block_threshold = manifest.thresholds()
    assert (clip_threshold, block_threshold) != manifest.thresholds("gamma")
    models = tmp_path / "models"
    shutil.copytree(MODELS / "uav-propeller", models / "uav-propeller")
    with serve_process(models, tmp_path / "serve.log") as server:
        for recording, anomalous in README_FLIGHTS:
            response = httpx.post(
                f"{server.url}/v1/models/uav-propeller/score",
                content=(data / recording).read_bytes(),
                headers={"Content-Type": "audio/flac"},
                timeout=60,
            )
            response.raise_for_status()
            answer = response.json()
            assert answer["operating_point"] == manifest.default_operating_point
            assert (answer["threshold"], answer["block_threshold"]) == manifest.thresholds()
            assert answer["anomaly"] is anomalous, recording
            flagged = sum(block["anomaly"] for block in answer["blocks"])
            if anomalous:
                assert flagged > len(answer["blocks"]) / 2, recording
            else:
                assert flagged < len(answer["blocks"]) / 10, recording

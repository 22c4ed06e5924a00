"""Scorer and decisions paired at the operating point the settings choose: AUSCULT_OPERATING_POINT
applies where a bundle has it, else the bundle's default; a per-model choice must exist."""

from __future__ import annotations

import pytest

from service.bundle.loader import load_bundle
from service.bundle.manifest import ManifestError
from service.scoring.audio import AudioScorer
from service.scoring.detectors import AudioDetector, OperatingPointChoice, WindowsDetector
from service.scoring.windows import WindowsScorer
from tests.bundle_factory import make_windows_bundle
from tests.service.clips import small_audio_bundle
from tests.service.operating_points import with_operating_points


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> AudioScorer:
    folder = small_audio_bundle(tmp_path_factory.mktemp("models") / "fan", name="fan")
    return AudioScorer(load_bundle(with_operating_points(folder)))


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> WindowsScorer:
    folder = make_windows_bundle(tmp_path_factory.mktemp("models") / "press", name="press")
    return WindowsScorer(load_bundle(folder))


@pytest.mark.parametrize(
    ("choice", "point", "factor"),
    [
        (OperatingPointChoice(), "lenient", 1000),
        (OperatingPointChoice("strict"), "strict", 1 / 1000),
        (OperatingPointChoice("false_alarm_rate"), "strict", 1 / 1000),
        # A point this bundle lacks: its default applies.
        (OperatingPointChoice("percentile"), "lenient", 1000),
        (OperatingPointChoice("strict", {"fan": "gamma"}), "lenient", 1000),
        (OperatingPointChoice(None, {"pump": "strict"}), "lenient", 1000),
    ],
)
def test_the_chosen_point_sets_both_audio_thresholds(
    audio: AudioScorer, choice: OperatingPointChoice, point: str, factor: float
) -> None:
    detector = AudioDetector.at(audio, choice)
    assert detector.operating_point == point
    manifest = audio.manifest
    assert detector.clip.threshold == pytest.approx(manifest.clip_decision.threshold * factor)
    assert detector.block.threshold == pytest.approx(manifest.block_decision.threshold * factor)


def test_a_per_model_point_the_bundle_lacks_refuses_it(audio: AudioScorer) -> None:
    with pytest.raises(ManifestError, match="no operating point 'percentile'"):
        AudioDetector.at(audio, OperatingPointChoice(None, {"fan": "percentile"}))


def test_a_bundle_without_points_offers_gamma_and_its_percentile(windows: WindowsScorer) -> None:
    manifest = windows.manifest
    gamma = WindowsDetector.at(windows, OperatingPointChoice("strict"))
    assert (gamma.operating_point, gamma.step.threshold) == (
        "gamma",
        manifest.step_decision.threshold,
    )
    percentile = WindowsDetector.at(windows, OperatingPointChoice("percentile"))
    assert manifest.percentile_threshold is not None
    assert (percentile.operating_point, percentile.step.threshold) == (
        "percentile",
        manifest.percentile_threshold,
    )

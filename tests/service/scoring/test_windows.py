"""WindowsScorer and WindowsStreamScorer on a real ONNX bundle from tests/bundle_factory.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.bundle.loader import LoadedBundle, load_bundle
from service.features.windows import window_starts
from service.scoring.decision import Decision
from service.scoring.windows import (
    SeriesTooShortError,
    StepScores,
    WindowsScorer,
    WindowsStreamScorer,
    anomaly_runs,
    top_channels,
)
from tests.bundle_factory import make_windows_bundle, sensor_series, standardise
from tests.service.clips import small_audio_bundle

WINDOW = 20


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> LoadedBundle:
    folder = make_windows_bundle(
        tmp_path_factory.mktemp("windows"), channels=4, window=WINDOW, stride=5
    )
    return load_bundle(folder)


def test_scores_are_the_mean_of_the_windows_covering_each_step(bundle: LoadedBundle) -> None:
    series = sensor_series(233, channels=4, seed=3)
    result = WindowsScorer(bundle).score(series)
    assert result.scores.shape == (233,)
    assert result.channel_error.shape == (233, 4)
    # The same computation by hand: every window through ONNX Runtime, then per-step means.
    standard = standardise(series, bundle.manifest)  # type: ignore[arg-type]
    starts = window_starts(233, WINDOW, 5)
    total, count = np.zeros(233), np.zeros(233)
    for start in starts:
        out = bundle.session.run(["score"], {"windows": standard[None, start : start + WINDOW]})
        total[start : start + WINDOW] += out[0][0]
        count[start : start + WINDOW] += 1
    np.testing.assert_allclose(result.scores, total / count, rtol=1e-5)
    np.testing.assert_allclose(result.channel_error.mean(axis=1), result.scores, rtol=1e-4)


def test_the_shifted_channel_stands_out(bundle: LoadedBundle) -> None:
    series = sensor_series(400, channels=4, seed=5, anomaly=(200, 240, 2))
    scorer = WindowsScorer(bundle)
    result = scorer.score(series)
    decision = Decision(bundle.manifest.step_decision.threshold)  # type: ignore[union-attr]
    flags = decision.anomalies(result.scores)
    assert flags[205:235].all()
    assert flags[:150].mean() < 0.1
    runs = anomaly_runs(result, flags, scorer.channel_names, count=2)
    main = max(runs, key=lambda run: run.end - run.start)
    assert main.start <= 205
    assert main.end >= 235
    assert main.channels[0].name == "sensor_2"
    assert 200 <= main.peak_step < 240


def _stream_in_chunks(bundle: LoadedBundle, series: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    stream = WindowsStreamScorer(WindowsScorer(bundle))
    pieces: list[StepScores] = []
    position = 0
    while position < series.shape[0]:
        size = int(rng.integers(1, 40))
        pieces.append(stream.push(series[position : position + size]))
        position += size
    pieces.append(stream.finish())
    assert stream.steps_received == series.shape[0]
    firsts = [p.first_step for p in pieces if p.n_steps]
    assert firsts == sorted(firsts)
    return np.concatenate([p.scores for p in pieces])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("steps", [300, 303, 20, 21])
def test_a_stream_gives_the_batch_scores_whatever_the_chunk_sizes(
    bundle: LoadedBundle, seed: int, steps: int
) -> None:
    # 300 steps: windows every 5 steps end exactly at the end; 303: the batch adds a window
    # aligned to the end (at 283), which the stream adds when it finishes; 20 and 21: one
    # window, and one plus the end-aligned one.
    series = sensor_series(steps, channels=4, seed=7, anomaly=(10, 15, 1))
    scores = _stream_in_chunks(bundle, series, seed)
    assert scores.shape == (steps,)
    np.testing.assert_allclose(scores, WindowsScorer(bundle).score(series).scores, rtol=1e-5)


def test_a_stream_shorter_than_one_window_has_no_scores(bundle: LoadedBundle) -> None:
    stream = WindowsStreamScorer(WindowsScorer(bundle))
    assert stream.push(sensor_series(19, channels=4, seed=1)).n_steps == 0
    assert stream.finish().n_steps == 0
    assert stream.steps_received == 19


def test_a_stream_returns_steps_once_no_later_window_can_cover_them(
    bundle: LoadedBundle,
) -> None:
    stream = WindowsStreamScorer(WindowsScorer(bundle))
    series = sensor_series(60, channels=4, seed=1)
    assert stream.push(series[:19]).n_steps == 0  # not one window yet
    # Window [0, 20) is scored, but were the stream to end here, a window aligned to the end
    # would cover every step: none is final.
    assert stream.push(series[19:20]).n_steps == 0
    # Windows at 5 and 10: steps 0-11 are final, as the next stride window starts at 15 and
    # one aligned to an end at 32 or later starts at 12 or later.
    first = stream.push(series[20:32])
    assert (first.first_step, first.n_steps) == (0, 12)
    second = stream.push(series[32:40])  # windows at 15 and 20: steps 12-19 are final
    assert (second.first_step, second.n_steps) == (12, 8)
    end = stream.finish()  # steps 20-39, the last window [20, 40) ending at the end
    assert (end.first_step, end.n_steps) == (20, 20)


def test_top_channels_rank_by_share_of_the_summed_error() -> None:
    errors = np.array([[1.0, 0.0, 3.0], [1.0, 0.0, 5.0]])
    shares = top_channels(errors, ("a", "b", "c"), 2)
    assert [s.name for s in shares] == ["c", "a"]
    assert shares[0].share == pytest.approx(0.8)
    assert shares[1].share == pytest.approx(0.2)


def test_anomaly_runs_are_numbered_from_the_first_step() -> None:
    steps = StepScores(
        first_step=100,
        scores=np.array([0.1, 2.0, 3.0, 0.1, 5.0]),
        channel_error=np.array([[1, 0], [2, 0], [0, 9], [1, 1], [0, 1]], dtype=float),
    )
    runs = anomaly_runs(steps, steps.scores > 1.0, ("x", "y"), count=1)
    assert [(r.start, r.end, r.peak_step) for r in runs] == [(101, 103, 102), (104, 105, 104)]
    assert runs[0].channels[0].name == "y"
    assert runs[0].channels[0].share == pytest.approx(9 / 11)


def test_bad_input_is_refused_with_a_reason(bundle: LoadedBundle) -> None:
    scorer = WindowsScorer(bundle)
    with pytest.raises(SeriesTooShortError, match=r"19 steps.*at least one window of 20"):
        scorer.score(sensor_series(19, channels=4))
    with pytest.raises(ValueError, match="3 channels, the model expects 4"):
        scorer.score(sensor_series(50, channels=3))
    series = sensor_series(50, channels=4)
    series[7, 3] = np.inf
    with pytest.raises(ValueError, match="step 7, channel 3"):
        scorer.score(series)


def test_an_audio_bundle_is_not_a_windows_bundle(tmp_path: Path) -> None:
    audio = load_bundle(small_audio_bundle(tmp_path / "audio"))
    with pytest.raises(TypeError, match="needs a windows bundle"):
        WindowsScorer(audio)

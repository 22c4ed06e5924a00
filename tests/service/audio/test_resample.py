"""resample keeps what lies below both Nyquist frequencies and removes what would alias;
StreamingResampler gives the same samples from a signal pushed piece by piece."""

from __future__ import annotations

import numpy as np
import pytest

from service.audio.resample import StreamingResampler, resample


def _tone(hz: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _level_at(samples: np.ndarray, rate: int, hz: float) -> float:
    """Spectral amplitude at hz of a 1 s clip (bin k is k Hz), relative to a full-scale tone."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(spectrum[round(hz)] / (samples.size / 4))


@pytest.mark.parametrize(("from_rate", "to_rate"), [(44100, 16000), (48000, 16000), (8000, 16000)])
def test_a_tone_below_both_nyquists_survives(from_rate: int, to_rate: int) -> None:
    out = resample(_tone(1000, from_rate), from_rate, to_rate)
    assert out.dtype == np.float32
    assert out.shape == (to_rate,)
    assert _level_at(out, to_rate, 1000) == pytest.approx(0.5, rel=0.02)
    # interior samples match the ideal tone at the new rate
    np.testing.assert_allclose(out[200:-200], _tone(1000, to_rate)[200:-200], atol=5e-3)


def test_a_tone_above_the_new_nyquist_is_filtered_not_aliased() -> None:
    out = resample(_tone(11000, 44100), 44100, 16000)
    # unfiltered, 11 kHz would fold to 5 kHz at 16 kHz
    assert _level_at(out, 16000, 5000) < 1e-3
    assert np.sqrt(np.mean(out**2)) < 1e-2


def test_the_same_rate_returns_the_samples_as_float32() -> None:
    samples = _tone(440, 16000).astype(np.float64)
    out = resample(samples, 16000, 16000)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, samples.astype(np.float32))


@pytest.mark.parametrize(("from_rate", "to_rate"), [(0, 16000), (16000, -1)])
def test_refuses_rates_that_are_not_positive(from_rate: int, to_rate: int) -> None:
    with pytest.raises(ValueError, match="sample rates must be positive"):
        resample(np.zeros(100, dtype=np.float32), from_rate, to_rate)


def test_refuses_more_than_one_dimension() -> None:
    with pytest.raises(ValueError, match="1-D"):
        resample(np.zeros((100, 2), dtype=np.float32), 44100, 16000)


@pytest.mark.parametrize(
    ("from_rate", "to_rate"),
    [(48000, 16000), (44100, 16000), (8000, 16000), (22050, 16000), (16000, 16000)],
)
def test_a_stream_split_anywhere_gives_the_whole_signal_result(
    from_rate: int, to_rate: int
) -> None:
    rng = np.random.default_rng(from_rate)
    signal = rng.standard_normal(from_rate + 777).astype(np.float32)
    whole = resample(signal, from_rate, to_rate)
    resampler = StreamingResampler(from_rate, to_rate)
    pieces, start = [], 0
    while start < signal.size:
        size = int(rng.integers(1, 4000))
        pieces.append(resampler.push(signal[start : start + size]))
        start += size
    pieces.append(resampler.finish())
    streamed = np.concatenate(pieces)
    assert streamed.dtype == np.float32
    assert streamed.shape == whole.shape
    # Only the summation order differs from scipy's: float32 rounding.
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=2e-6)


def test_a_stream_gives_outputs_as_soon_as_their_input_has_arrived() -> None:
    resampler = StreamingResampler(48000, 16000)
    # Each output needs 10 output periods of look-ahead: 1 s in gives all but the last ~10.
    out = resampler.push(np.zeros(48000, dtype=np.float32))
    assert 15980 <= out.size < 16000
    assert out.size + resampler.finish().size == 16000


def test_a_stream_refuses_rates_that_are_not_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        StreamingResampler(0, 16000)

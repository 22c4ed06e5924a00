"""resample keeps what lies below both Nyquist frequencies and removes what would alias;
StreamingResampler gives the same samples from a signal pushed piece by piece."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
import scipy.signal

from service.audio.decode import AudioDecodeError
from service.audio.resample import (
    FILTERS,
    StreamingResampler,
    UnsupportedRateError,
    _FilterCache,
    resample,
    resampling_factors,
)
from service.config import DEFAULT_MAX_RESAMPLE_FACTOR


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
    [
        (48000, 16000),
        (44100, 16000),
        (8000, 16000),
        (22050, 16000),
        (16000, 16000),
        (8000, 48000),
        (191_990, 22050),  # the longest filter the default factor limit admits
    ],
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


@pytest.mark.parametrize(("from_rate", "to_rate"), [(7999, 16000), (200_000, 16000), (16000, 4000)])
def test_refuses_rates_outside_the_accepted_range(from_rate: int, to_rate: int) -> None:
    outside = from_rate if from_rate != 16000 else to_rate
    message = rf"sample rate {outside} Hz is outside the accepted range 8000 to 192000 Hz"
    with pytest.raises(ValueError, match=message):
        resample(np.zeros(100, dtype=np.float32), from_rate, to_rate)
    with pytest.raises(ValueError, match=message):
        StreamingResampler(from_rate, to_rate)


def test_the_range_is_the_callers() -> None:
    out = resample(np.zeros(300, dtype=np.float32), 300_000, 100_000, max_rate=384_000)
    assert out.shape == (100,)
    with pytest.raises(ValueError, match="outside the accepted range 16000 to 16000 Hz"):
        StreamingResampler(8000, 16000, min_rate=16000, max_rate=16000)


def test_a_filter_is_designed_once_per_ratio_and_shared() -> None:
    """44.1k->16k, 16k->44.1k and their streams all use one cached filter (441 is the larger
    reduced factor of each), the very one resample_poly would design."""
    FILTERS.clear()
    StreamingResampler(44100, 16000)
    assert FILTERS.nbytes == (20 * 441 + 1) * 4  # the stream's filter, in float32
    taps = FILTERS.taps(441)
    signal = np.random.default_rng(1).standard_normal(4410).astype(np.float32)
    first = resample(signal, 44100, 16000)
    resample(signal, 16000, 44100)
    StreamingResampler(44100, 16000)
    assert FILTERS.taps(441) is taps
    assert FILTERS.nbytes == taps.nbytes
    assert not taps.flags.writeable
    np.testing.assert_array_equal(first, scipy.signal.resample_poly(signal, 160, 441))


def test_the_filter_cache_is_bounded_in_bytes() -> None:
    cache = _FilterCache(budget_bytes=100_000)
    for factor in (3, 441, 640, 800, 2):  # 61 to 16,001 taps of float32
        cache.taps(factor)
        assert cache.nbytes <= 100_000
    assert cache.taps(2).size == 41
    huge = cache.taps(3000)  # 240 KB, over the budget: kept alone until the next one
    assert cache.nbytes == huge.nbytes
    cache.taps(3)
    assert cache.nbytes == cache.taps(3).nbytes


MODEL_RATES = [16000, 22050, 44100, 48000]
REAL_WORLD_RATES = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 51200, 88200, 96000]
REAL_WORLD_RATES += [176_400, 192_000]


@pytest.mark.parametrize("model_rate", MODEL_RATES)
def test_every_common_rate_and_multiple_of_10_hz_is_resampled_by_default(model_rate: int) -> None:
    for rate in [*REAL_WORLD_RATES, *range(8000, 192_001, 10)]:
        up, down = resampling_factors(rate, model_rate)
        assert max(up, down) <= DEFAULT_MAX_RESAMPLE_FACTOR


@pytest.mark.parametrize(("rate", "factor"), [(191_999, 191_999), (44_099, 44_099)])
def test_an_odd_rate_is_refused_before_a_filter_is_designed(rate: int, factor: int) -> None:
    FILTERS.clear()
    message = (
        rf"sample rate {rate} Hz cannot be resampled to the model's 16000 Hz: their ratio "
        rf"reduces to 16000/{factor}, and factors above 20000 \(AUSCULT_MAX_RESAMPLE_FACTOR\) "
        rf"are refused because the filter would have {20 * factor + 1} taps"
    )
    with pytest.raises(UnsupportedRateError, match=message):
        resample(np.zeros(100, dtype=np.float32), rate, 16000)
    with pytest.raises(UnsupportedRateError, match=message):
        StreamingResampler(rate, 16000)
    assert FILTERS.nbytes == 0
    # The clip route answers it as any other audio it cannot score: 422.
    assert issubclass(UnsupportedRateError, AudioDecodeError)


def test_a_refusal_names_the_rates_that_work() -> None:
    with pytest.raises(UnsupportedRateError) as refused:
        resampling_factors(191_999, 16000)
    assert str(refused.value).endswith(
        "rates that work: the nearest are 191990 and 192000 Hz; common ones are 8000, 11025, "
        "16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 192000 Hz"
    )
    with pytest.raises(UnsupportedRateError) as refused:
        resampling_factors(191_999, 16000, max_rate=191_999)
    assert "the nearest are 191990 Hz; " in str(refused.value)  # none above the range
    with pytest.raises(UnsupportedRateError) as refused:
        resampling_factors(48_000, 16000, max_factor=2)
    # None within 2 kHz: only the common rates are named.
    assert str(refused.value).endswith("rates that work: common ones are 8000, 16000, 32000 Hz")


def test_the_factor_limit_is_the_callers() -> None:
    assert resampling_factors(48_000, 16000, max_factor=3) == (1, 3)
    with pytest.raises(UnsupportedRateError, match="factors above 2 "):
        resampling_factors(48_000, 16000, max_factor=2)
    with pytest.raises(UnsupportedRateError, match="factors above 2 "):
        StreamingResampler(48_000, 16000, max_factor=2)
    out = resample(np.zeros(191_999, dtype=np.float32), 191_999, 16000, max_factor=191_999)
    assert out.shape == (16000,)


def _traced_mb(action: Callable[[], object]) -> tuple[float, float]:
    """Python and numpy memory (MB) that action allocates: at its peak, and still held after."""
    tracemalloc.start()
    try:
        kept = action()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return peak / 2**20, held / 2**20


def test_a_large_push_needs_memory_for_its_audio_not_audio_times_filter() -> None:
    """256 KB of 16-bit samples at 8 kHz become 786,432 outputs at 48 kHz, each a sum of 21
    products: all at once the temporaries would take 670 MB; the output itself is 3 MB."""
    samples = np.random.default_rng(0).standard_normal(131_072).astype(np.float32)
    resampler = StreamingResampler(8000, 48000)
    peak, _ = _traced_mb(lambda: resampler.push(samples))
    assert peak < 48, peak


def test_streams_share_the_cached_filter_instead_of_copying_it() -> None:
    """The longest filter the default limit admits is 1.5 MB (384,001 float32 taps); ten
    streams of that rate pair hold no copy of it."""
    FILTERS.clear()
    FILTERS.taps(19_199)
    _, held = _traced_mb(lambda: [StreamingResampler(191_990, 16000) for _ in range(10)])
    assert held < 1, held

"""Resampling piece by piece gives what resampling the whole signal gives."""

from __future__ import annotations

import numpy as np
import pytest

from service.audio.resample import resample
from service.stream_resample import StreamingResampler


@pytest.mark.parametrize(
    ("from_rate", "to_rate"),
    [(48000, 16000), (44100, 16000), (8000, 16000), (22050, 16000), (16000, 16000)],
)
def test_any_split_gives_the_whole_signal_result(from_rate: int, to_rate: int) -> None:
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


def test_outputs_come_as_soon_as_their_input_has_arrived() -> None:
    resampler = StreamingResampler(48000, 16000)
    # Each output needs 10 output periods of look-ahead: 1 s in gives all but the last ~10.
    out = resampler.push(np.zeros(48000, dtype=np.float32))
    assert 15980 <= out.size < 16000
    assert out.size + resampler.finish().size == 16000


def test_rates_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        StreamingResampler(0, 16000)

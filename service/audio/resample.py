"""Polyphase resampling between integer sample rates: a whole signal (`resample`) or one that
arrives piece by piece (`StreamingResampler`), with the same output samples.

The filter's length is 20 taps per unit of the larger factor of the rate ratio reduced by their
greatest common divisor: 48 kHz to 16 kHz needs 61 taps, an odd rate such as 191,999 Hz 3.84 M.
Both therefore refuse, before any filter is designed, rates outside [min_rate, max_rate] and
ratios whose larger factor passes max_factor (the service passes its AUSCULT_MIN/MAX_SAMPLE_RATE
and AUSCULT_MAX_RESAMPLE_FACTOR). Each filter is designed once and kept in a small cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from math import gcd

import numpy as np
import scipy.signal

from service.audio.errors import AudioDecodeError
from service.config import (
    DEFAULT_MAX_RESAMPLE_FACTOR,
    DEFAULT_MAX_SAMPLE_RATE,
    DEFAULT_MIN_SAMPLE_RATE,
)

# Enough for the filters of every common rate pair (tens of KB each) and four of the longest
# the default factor limit admits (20,000: 400 K taps, 1.6 MB). Kept small because the cache
# is memory a worker holds for good: at 32 MB a fuzz run over 231 odd rates left RSS 62 MB
# above its start (docs/HARDENING.md); a rate that falls out is redesigned in ~0.1 s.
FILTER_CACHE_BYTES = 8 * 1024 * 1024
# Rates named in a refusal when they work for the pair in question.
_COMMON_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 192000)
# How far a refusal looks for the nearest rates that work (a few thousand gcds: microseconds).
_NEAREST_SEARCH_HZ = 2000
# StreamingResampler evaluates its outputs in groups of about this many products, so its
# temporary arrays stay near 2 MB each however much audio one push brings.
_PRODUCTS_PER_GROUP = 1 << 18


class UnsupportedRateError(AudioDecodeError):
    """A sample rate, or a pair of them, that this service does not resample between."""


def _larger_factor(from_rate: int, to_rate: int) -> int:
    common = gcd(from_rate, to_rate)
    return max(from_rate, to_rate) // common


def _rates_that_work(
    from_rate: int, to_rate: int, min_rate: int, max_rate: int, max_factor: int
) -> str:
    """The nearest rates below and above from_rate, and the common ones, that resample to
    to_rate within max_factor: what a refusal suggests instead."""

    def works(rate: int) -> bool:
        return min_rate <= rate <= max_rate and _larger_factor(rate, to_rate) <= max_factor

    below = next(
        (r for r in range(from_rate - 1, from_rate - _NEAREST_SEARCH_HZ, -1) if works(r)), None
    )
    above = next(
        (r for r in range(from_rate + 1, from_rate + _NEAREST_SEARCH_HZ) if works(r)), None
    )
    nearest = [str(rate) for rate in (below, above) if rate is not None]
    common = [str(rate) for rate in _COMMON_RATES if works(rate)]
    parts = []
    if nearest:
        parts.append(f"the nearest are {' and '.join(nearest)} Hz")
    if common:
        parts.append(f"common ones are {', '.join(common)} Hz")
    return "; ".join(parts) if parts else "none near it"


def resampling_factors(
    from_rate: int,
    to_rate: int,
    *,
    min_rate: int = DEFAULT_MIN_SAMPLE_RATE,
    max_rate: int = DEFAULT_MAX_SAMPLE_RATE,
    max_factor: int = DEFAULT_MAX_RESAMPLE_FACTOR,
) -> tuple[int, int]:
    """The upsampling and downsampling factors: the rate ratio reduced by gcd. Raises
    UnsupportedRateError for a rate outside [min_rate, max_rate] or a factor above max_factor,
    with the rates that would work. Cheap (no filter is designed): callers check a rate here
    before they pay for anything."""
    if from_rate <= 0 or to_rate <= 0:
        raise UnsupportedRateError(f"sample rates must be positive, got {from_rate} and {to_rate}")
    for rate in (from_rate, to_rate):
        if not min_rate <= rate <= max_rate:
            raise UnsupportedRateError(
                f"sample rate {rate} Hz is outside the accepted range {min_rate} to {max_rate} Hz"
            )
    common = gcd(from_rate, to_rate)
    up, down = to_rate // common, from_rate // common
    if max(up, down) > max_factor:
        alternatives = _rates_that_work(from_rate, to_rate, min_rate, max_rate, max_factor)
        raise UnsupportedRateError(
            f"sample rate {from_rate} Hz cannot be resampled to the model's {to_rate} Hz: their "
            f"ratio reduces to {up}/{down}, and factors above {max_factor} "
            "(AUSCULT_MAX_RESAMPLE_FACTOR) are refused because the filter would have "
            f"{20 * max(up, down) + 1} taps; rates that work: {alternatives}"
        )
    return up, down


class _FilterCache:
    """Low-pass filters by the larger of the reduced factors (the only thing resample_poly's
    design depends on, so 48k->16k and 16k->48k share one), least recently used dropped first
    once they hold more than budget_bytes. Bounded in bytes, not entries, because one filter
    may be 15 MB and another 35 KB."""

    def __init__(self, budget_bytes: int) -> None:
        self._budget = budget_bytes
        self._filters: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # scoring threads resample concurrently

    def taps(self, max_factor: int) -> np.ndarray:
        """resample_poly's filter (float32, before its gain of `up`), read-only."""
        with self._lock:
            cached = self._filters.get(max_factor)
            if cached is not None:
                self._filters.move_to_end(max_factor)
                return cached
        # Designed outside the lock: a long filter takes a while, and two threads designing the
        # same one at once only waste time.
        half_len = 10 * max_factor
        designed: np.ndarray = scipy.signal.firwin(
            2 * half_len + 1, 1.0 / max_factor, window=("kaiser", 5.0)
        )
        taps = designed.astype(np.float32)
        taps.flags.writeable = False
        with self._lock:
            self._filters[max_factor] = taps
            self._filters.move_to_end(max_factor)
            while len(self._filters) > 1 and self.nbytes > self._budget:
                self._filters.popitem(last=False)
        return taps

    @property
    def nbytes(self) -> int:
        return sum(taps.nbytes for taps in self._filters.values())

    def clear(self) -> None:
        with self._lock:
            self._filters.clear()


FILTERS = _FilterCache(FILTER_CACHE_BYTES)


def resample(
    samples: np.ndarray,
    from_rate: int,
    to_rate: int,
    *,
    min_rate: int = DEFAULT_MIN_SAMPLE_RATE,
    max_rate: int = DEFAULT_MAX_SAMPLE_RATE,
    max_factor: int = DEFAULT_MAX_RESAMPLE_FACTOR,
) -> np.ndarray:
    """Float32 samples at to_rate, by scipy's polyphase filter with the ratio reduced by gcd.
    Raises UnsupportedRateError (see `resampling_factors`)."""
    up, down = resampling_factors(
        from_rate, to_rate, min_rate=min_rate, max_rate=max_rate, max_factor=max_factor
    )
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"samples must be a 1-D array, got shape {array.shape}")
    if up == down:
        return array.astype(np.float32, copy=False)
    # resample_poly designs its filter in the input's dtype when not given one; float32 input
    # with the cached float32 filter gives the very samples it would.
    resampled = scipy.signal.resample_poly(
        array.astype(np.float32, copy=False), up, down, window=FILTERS.taps(max(up, down))
    )
    return np.asarray(resampled, dtype=np.float32)


class StreamingResampler:
    """scipy.signal.resample_poly(x, up, down) (Kaiser window, zero padding), evaluated output
    sample by output sample as soon as the input it needs has arrived. It reads the cached
    filter itself: a stream holds no copy of it, only the input its next outputs reach."""

    def __init__(
        self,
        from_rate: int,
        to_rate: int,
        *,
        min_rate: int = DEFAULT_MIN_SAMPLE_RATE,
        max_rate: int = DEFAULT_MAX_SAMPLE_RATE,
        max_factor: int = DEFAULT_MAX_RESAMPLE_FACTOR,
    ) -> None:
        """Raises UnsupportedRateError (see `resampling_factors`) before designing a filter."""
        self.up, self.down = resampling_factors(
            from_rate, to_rate, min_rate=min_rate, max_rate=max_rate, max_factor=max_factor
        )
        self._inputs = np.zeros(0, dtype=np.float64)  # kept input, from global index _first
        self._first = 0
        self._received = 0
        self._emitted = 0
        if self.up == self.down:
            return
        # resample_poly's filter: same length, cutoff, window, gain (`up`, applied per product in
        # float32 as scipy's float32 filter has it) and zeros before it (pre_pad).
        max_factor = max(self.up, self.down)
        half_len = 10 * max_factor
        self._filter = FILTERS.taps(max_factor)  # shared and read-only
        self._gain = np.float32(self.up)
        self._pre_pad = self.down - half_len % self.down
        self._n_taps = self._pre_pad + self._filter.size  # of the padded filter
        self._skip = (half_len + self._pre_pad) // self.down  # outputs resample_poly drops first

    def push(self, samples: np.ndarray) -> np.ndarray:
        """The float32 output samples that the input so far fully determines."""
        if self.up == self.down:
            return np.asarray(samples, dtype=np.float32)
        self._inputs = np.concatenate([self._inputs, np.asarray(samples, dtype=np.float64)])
        self._received += int(np.asarray(samples).size)
        # Output m needs input up to index ((m + skip) * down) // up.
        ready = (self._received * self.up - 1) // self.down - self._skip + 1
        return self._emit(max(ready, self._emitted))

    def finish(self) -> np.ndarray:
        """The remaining outputs, with zeros after the last input as resample_poly pads."""
        if self.up == self.down:
            return np.zeros(0, dtype=np.float32)
        total = -(-self._received * self.up // self.down)
        return self._emit(total)

    def _emit(self, end: int) -> np.ndarray:
        if end <= self._emitted:
            return np.zeros(0, dtype=np.float32)
        # Each output is independent of the others: evaluating them in groups gives the same
        # samples while the (outputs x taps) temporaries stay small.
        per_output = -(-self._n_taps // self.up)
        group = max(1, _PRODUCTS_PER_GROUP // per_output)
        result = np.concatenate(
            [
                self._outputs(first, min(first + group, end), per_output)
                for first in range(self._emitted, end, group)
            ]
        )
        self._emitted = end
        # Keep only the input that outputs still to come can reach.
        oldest_needed = ((end + self._skip) * self.down - self._n_taps + 1) // self.up
        drop = min(max(oldest_needed - self._first, 0), self._inputs.size)
        self._inputs = self._inputs[drop:]
        self._first += drop
        return result

    def _outputs(self, first: int, end: int, per_output: int) -> np.ndarray:
        """Outputs first..end-1 from the kept input (which must reach back far enough)."""
        outputs = np.arange(first, end, dtype=np.int64)
        positions = (outputs + self._skip) * self.down  # in the upsampled signal
        newest = positions // self.up
        inputs = newest[:, None] - np.arange(per_output)[None, :]
        # Index into the filter without its pre_pad zeros, which weigh nothing.
        tap_index = positions[:, None] - inputs * self.up - self._pre_pad
        usable = (
            (tap_index >= 0)
            & (tap_index < self._filter.size)
            & (inputs >= self._first)
            & (inputs < self._first + self._inputs.size)
        )
        local = np.where(usable, inputs - self._first, 0)
        taps = self._filter[np.clip(tap_index, 0, self._filter.size - 1)] * self._gain
        weights = np.where(usable, taps, 0.0)
        samples: np.ndarray = (self._inputs[local] * weights).sum(axis=1).astype(np.float32)
        return samples

"""Polyphase resampling between integer sample rates: a whole signal (`resample`) or one that
arrives piece by piece (`StreamingResampler`), with the same output samples."""

from __future__ import annotations

from math import gcd

import numpy as np
import scipy.signal


def _up_down(from_rate: int, to_rate: int) -> tuple[int, int]:
    """The upsampling and downsampling factors: the rate ratio reduced by gcd."""
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} and {to_rate}")
    common = gcd(from_rate, to_rate)
    return to_rate // common, from_rate // common


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Float32 samples at to_rate, by scipy's polyphase filter with the ratio reduced by gcd."""
    up, down = _up_down(from_rate, to_rate)
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"samples must be a 1-D array, got shape {array.shape}")
    if up == down:
        return array.astype(np.float32, copy=False)
    resampled = scipy.signal.resample_poly(array, up, down)
    return np.asarray(resampled, dtype=np.float32)


class StreamingResampler:
    """scipy.signal.resample_poly(x, up, down) (Kaiser window, zero padding), evaluated output
    sample by output sample as soon as the input it needs has arrived."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.up, self.down = _up_down(from_rate, to_rate)
        self._inputs = np.zeros(0, dtype=np.float64)  # kept input, from global index _first
        self._first = 0
        self._received = 0
        self._emitted = 0
        if self.up == self.down:
            return
        # The filter resample_poly designs: same length, cutoff, window, gain and pre-padding.
        max_rate = max(self.up, self.down)
        half_len = 10 * max_rate
        taps = scipy.signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0))
        taps = taps.astype(np.float32) * np.float32(self.up)
        pre_pad = self.down - half_len % self.down
        self._taps = np.concatenate([np.zeros(pre_pad, dtype=np.float32), taps]).astype(np.float64)
        self._skip = (half_len + pre_pad) // self.down  # outputs resample_poly drops first

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
        outputs = np.arange(self._emitted, end, dtype=np.int64)
        if outputs.size == 0:
            return np.zeros(0, dtype=np.float32)
        positions = (outputs + self._skip) * self.down  # in the upsampled signal
        newest = positions // self.up
        n_taps = -(-self._taps.size // self.up)
        inputs = newest[:, None] - np.arange(n_taps)[None, :]
        tap_index = positions[:, None] - inputs * self.up
        usable = (
            (tap_index < self._taps.size)
            & (inputs >= self._first)
            & (inputs < self._first + self._inputs.size)
        )
        local = np.where(usable, inputs - self._first, 0)
        weights = np.where(usable, self._taps[np.minimum(tap_index, self._taps.size - 1)], 0.0)
        result: np.ndarray = (self._inputs[local] * weights).sum(axis=1).astype(np.float32)
        self._emitted = end
        # Keep only the input that outputs still to come can reach.
        oldest_needed = ((end + self._skip) * self.down - self._taps.size + 1) // self.up
        drop = min(max(oldest_needed - self._first, 0), self._inputs.size)
        self._inputs = self._inputs[drop:]
        self._first += drop
        return result

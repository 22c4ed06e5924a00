"""Polyphase resampling between integer sample rates."""

from __future__ import annotations

from math import gcd

import numpy as np
import scipy.signal


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Float32 samples at to_rate, by scipy's polyphase filter with the ratio reduced by gcd."""
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} and {to_rate}")
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"samples must be a 1-D array, got shape {array.shape}")
    if from_rate == to_rate:
        return array.astype(np.float32, copy=False)
    common = gcd(from_rate, to_rate)
    resampled = scipy.signal.resample_poly(array, to_rate // common, from_rate // common)
    return np.asarray(resampled, dtype=np.float32)

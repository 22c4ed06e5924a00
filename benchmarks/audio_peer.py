"""The peer a user would pick instead: PyOD's AudioAE (the DCASE 2020 baseline recipe, 64 mels
and a 5-frame context), fitted and scored on exactly the clips Auscult trains and tests on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.audio_protocol import SAMPLE_RATE
from training.audio.clips import Clip, iter_clips
from training.audio.datasets import Recording

if TYPE_CHECKING:
    from pyod.models.audio_ae import AudioAE


def fit_peer(train_normal: Sequence[Recording], clip_seconds: float | None, seed: int) -> AudioAE:
    """AudioAE at its defaults (40 epochs, encoder 128-32-8) but for the DCASE recipe's
    16 kHz, 64 mels and 5 frames, fitted on the clips of Auscult's training normal recordings."""
    # Imported here: PyOD is the `bench` extra, and the benchmarks that can leave the peer out
    # (and their tests, which CI runs with `train` and `dev` only) load without it.
    from pyod.models.audio_ae import AudioAE

    clips = [c.samples for c in iter_clips(train_normal, SAMPLE_RATE, clip_seconds)]
    peer = AudioAE(n_mels=64, context=5, sr=SAMPLE_RATE, random_state=seed, device="cpu")
    peer.fit(clips)
    return peer


def peer_scores(peer: AudioAE, clips: Sequence[Clip | np.ndarray]) -> np.ndarray:
    """Clip scores: the mean reconstruction error of the clip's context windows."""
    samples = [c.samples if isinstance(c, Clip) else c for c in clips]
    return np.asarray(peer.decision_function(samples), dtype=np.float64)

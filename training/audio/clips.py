"""Cut recordings into fixed-length clips; every clip keeps the recording it came from, so splits
can stay by recording."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from service.audio.decode import AudioDecodeError, load_audio
from training.audio.datasets import DatasetError, Recording


@dataclass(frozen=True)
class Clip:
    recording: Recording
    index: int
    samples: np.ndarray

    @property
    def clip_id(self) -> str:
        return f"{self.recording.recording_id}#{self.index}"


def cut_clips(
    samples: np.ndarray, sample_rate: int, clip_seconds: float | None
) -> list[np.ndarray]:
    """Consecutive clips of clip_seconds; a tail shorter than a clip is dropped, but a recording
    shorter than one clip stays whole. None keeps the recording as one clip (DCASE files)."""
    if clip_seconds is None:
        return [samples]
    if clip_seconds <= 0:
        raise ValueError(f"clip_seconds must be positive, got {clip_seconds}")
    length = round(clip_seconds * sample_rate)
    if samples.size <= length:
        return [samples]
    return [
        samples[start : start + length] for start in range(0, samples.size - length + 1, length)
    ]


def recording_clips(
    recording: Recording, sample_rate: int, clip_seconds: float | None
) -> list[Clip]:
    """Decode one recording (mono, resampled to sample_rate) and cut it into clips."""
    try:
        samples = load_audio(recording.path, sample_rate)
    except AudioDecodeError as exc:
        raise DatasetError(f"cannot read {recording.path}: {exc}") from exc
    pieces = cut_clips(samples, sample_rate, clip_seconds)
    return [Clip(recording, index, piece) for index, piece in enumerate(pieces)]


def iter_clips(
    recordings: Sequence[Recording], sample_rate: int, clip_seconds: float | None
) -> Iterator[Clip]:
    """Clips of each recording in turn, decoding one recording at a time."""
    for recording in recordings:
        yield from recording_clips(recording, sample_rate, clip_seconds)

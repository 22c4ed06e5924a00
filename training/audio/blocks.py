"""Model input blocks of a set of recordings, through the service's LogMelExtractor (the one
feature code path of training and serving), with the clip each block came from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from service.features.logmel import LogMelExtractor
from training.audio.clips import recording_clips
from training.audio.datasets import Recording


@dataclass(frozen=True)
class BlockSet:
    blocks: np.ndarray  # float32 [n_blocks, n_mels * frames_per_block]
    clip_of_block: np.ndarray  # int [n_blocks], numbering the clips that gave blocks
    n_clips: int
    hop_frames: int
    # int [n_clips]: the index, in the recordings read, of the recording each clip came from.
    recording_of_clip: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def recording_of_block(self) -> np.ndarray:
        return np.asarray(self.recording_of_clip[self.clip_of_block], dtype=np.int64)

    def of_recordings(self, keep: np.ndarray) -> BlockSet:
        """The blocks of the recordings whose indices are in `keep` (clips renumbered)."""
        kept_clips = np.flatnonzero(np.isin(self.recording_of_clip, keep))
        new_index = np.full(self.n_clips, -1, dtype=np.int64)
        new_index[kept_clips] = np.arange(kept_clips.size)
        mask = new_index[self.clip_of_block] >= 0
        return BlockSet(
            blocks=self.blocks[mask],
            clip_of_block=new_index[self.clip_of_block[mask]],
            n_clips=int(kept_clips.size),
            hop_frames=self.hop_frames,
            recording_of_clip=self.recording_of_clip[kept_clips],
        )

    def every(self, factor: int) -> BlockSet:
        """Every `factor`-th block of each clip: blocks at hop h thinned to hop factor * h."""
        if factor == 1:
            return self
        starts = np.r_[0, np.flatnonzero(np.diff(self.clip_of_block)) + 1]
        counts = np.diff(np.r_[starts, len(self.clip_of_block)])
        rank = np.arange(len(self.clip_of_block)) - np.repeat(starts, counts)
        mask = rank % factor == 0
        return BlockSet(
            blocks=self.blocks[mask],
            clip_of_block=self.clip_of_block[mask],
            n_clips=self.n_clips,
            hop_frames=self.hop_frames * factor,
            recording_of_clip=self.recording_of_clip,
        )

    def clip_means(self, block_values: np.ndarray) -> np.ndarray:
        """A clip's score is the mean of its blocks' scores."""
        sums = np.bincount(self.clip_of_block, weights=block_values, minlength=self.n_clips)
        counts = np.bincount(self.clip_of_block, minlength=self.n_clips)
        return np.asarray(sums / counts, dtype=np.float64)


def recording_blocks(
    recordings: Sequence[Recording],
    extractor: LogMelExtractor,
    clip_seconds: float | None,
    hop_frames: int | None = None,
    max_blocks: int | None = None,
) -> BlockSet:
    """Blocks of every clip, starting every hop_frames frames (default: the served hop). Clips
    too short for one block give none. When the blocks would exceed max_blocks, the hop doubles
    (and the blocks kept so far are thinned to match) until they fit."""
    settings = extractor.settings
    hop = settings.block_hop_frames if hop_frames is None else hop_frames
    per_clip: list[np.ndarray] = []
    recording_of_clip: list[int] = []
    total = 0
    clips = (
        (index, clip)
        for index, recording in enumerate(recordings)
        for clip in recording_clips(recording, settings.sample_rate, clip_seconds)
    )
    for index, clip in clips:
        if clip.samples.size < extractor.min_samples:
            continue
        blocks = extractor.blocks(extractor.log_mel(clip.samples), hop)
        per_clip.append(blocks)
        recording_of_clip.append(index)
        total += len(blocks)
        while max_blocks is not None and total > max_blocks and any(len(b) > 1 for b in per_clip):
            # Every other block at hop h is exactly the blocks at hop 2h.
            hop *= 2
            per_clip = [b[::2] for b in per_clip]
            total = sum(len(b) for b in per_clip)
    if not per_clip:
        return BlockSet(
            blocks=np.empty((0, settings.block_size), dtype=np.float32),
            clip_of_block=np.empty(0, dtype=np.int64),
            n_clips=0,
            hop_frames=hop,
        )
    clip_of_block = np.concatenate(
        [np.full(len(b), i, dtype=np.int64) for i, b in enumerate(per_clip)]
    )
    return BlockSet(
        blocks=np.concatenate(per_clip),
        clip_of_block=clip_of_block,
        n_clips=len(per_clip),
        hop_frames=hop,
        recording_of_clip=np.asarray(recording_of_clip, dtype=np.int64),
    )

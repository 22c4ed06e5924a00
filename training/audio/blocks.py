"""Model input blocks of a set of recordings, through the service's LogMelExtractor (the one
feature code path of training and serving), with the clip each block came from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.features.logmel import LogMelExtractor
from training.audio.clips import iter_clips
from training.audio.datasets import Recording


@dataclass(frozen=True)
class BlockSet:
    blocks: np.ndarray  # float32 [n_blocks, n_mels * frames_per_block]
    clip_of_block: np.ndarray  # int [n_blocks], numbering the clips that gave blocks
    n_clips: int
    hop_frames: int

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
    total = 0
    for clip in iter_clips(recordings, settings.sample_rate, clip_seconds):
        if clip.samples.size < extractor.min_samples:
            continue
        blocks = extractor.blocks(extractor.log_mel(clip.samples), hop)
        per_clip.append(blocks)
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
    )

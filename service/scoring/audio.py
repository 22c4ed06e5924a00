"""Score audio with an audio bundle: samples -> log-mel blocks -> block scores, the clip score
and the per-band error of the worst block."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.bundle.loader import LoadedBundle
from service.bundle.manifest import AudioManifest
from service.features.logmel import LogMelExtractor

DEFAULT_MAX_BATCH = 256


@dataclass(frozen=True)
class ClipScore:
    clip_score: float
    block_scores: np.ndarray  # (n_blocks,)
    block_start_s: np.ndarray
    block_end_s: np.ndarray
    worst_block: int  # index of the highest block score
    worst_band_error: np.ndarray  # (n_mels,) reconstruction error per mel band of that block


class AudioScorer:
    """Runs an audio bundle's model on log-mel blocks; it gives scores, never verdicts."""

    def __init__(self, bundle: LoadedBundle, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if not isinstance(bundle.manifest, AudioManifest):
            raise TypeError(
                f"bundle {bundle.manifest.name!r} at {bundle.path} is a "
                f"{bundle.manifest.kind} bundle; AudioScorer needs an audio bundle"
            )
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.bundle = bundle
        self.manifest: AudioManifest = bundle.manifest
        self.extractor = LogMelExtractor(bundle.manifest.features)
        self.max_batch = max_batch

    def score_blocks(self, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores (n_blocks,) and band errors (n_blocks, n_mels) of flattened log-mel blocks,
        run through the model at most max_batch blocks at a time."""
        features = self.manifest.features
        if blocks.ndim != 2 or blocks.shape[1] != features.block_size:
            raise ValueError(
                f"blocks must have shape (n, {features.block_size}), got {blocks.shape}"
            )
        scores = np.empty(blocks.shape[0], dtype=np.float32)
        band_error = np.empty((blocks.shape[0], features.n_mels), dtype=np.float32)
        values = blocks.astype(np.float32, copy=False)
        for start in range(0, blocks.shape[0], self.max_batch):
            stop = start + self.max_batch
            outputs = self.bundle.run({"blocks": values[start:stop]})
            scores[start:stop] = outputs["score"]
            band_error[start:stop] = outputs["band_error"]
        return scores, band_error

    def score_samples(self, samples: np.ndarray) -> ClipScore:
        """Score a mono clip already at the manifest's sample rate; raises AudioTooShortError
        when it holds no complete block."""
        return self.score_clip_blocks(self.extractor.clip_blocks(samples))

    def score_clip_blocks(self, blocks: np.ndarray) -> ClipScore:
        """Score a whole clip's blocks, as `extractor.clip_blocks` cuts them: at least one,
        block_hop_frames apart from the clip's start."""
        scores, band_error = self.score_blocks(blocks)
        if scores.size == 0:
            raise ValueError("a clip score needs at least one block, got none")
        start_s, end_s = self.extractor.block_times(scores.size)
        worst = int(np.argmax(scores))
        return ClipScore(
            # clip_aggregation is "mean", the only value the manifest allows
            clip_score=float(scores.mean(dtype=np.float64)),
            block_scores=scores,
            block_start_s=start_s,
            block_end_s=end_s,
            worst_block=worst,
            worst_band_error=band_error[worst],
        )

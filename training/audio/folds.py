"""Out-of-fold scores by recording: the normal training recordings are dealt into k folds, and
each fold is scored by a model trained without it, so that every normal training recording gets
scores from a model that never heard it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from training.audio.blocks import BlockSet
from training.audio.datasets import DatasetError
from training.audio.model import BlockScorer
from training.audio.operating_points import ThresholdScores
from training.audio.stages import block_scores

# Two or three recordings: each is its own fold (leave one recording out); beyond, three folds
# keep the cost at three extra trainings (each on two thirds of the recordings, stopped no later
# than the final model), which a 2-core machine can afford on every data set here. Fold models
# see fewer recordings than the final one, so their scores, and the thresholds, err high.
MAX_FOLDS = 3


def fold_count(n_recordings: int) -> int:
    if n_recordings < 2:
        raise DatasetError(
            f"the thresholds need scores of at least 2 normal training recordings, got "
            f"{n_recordings}: add normal recordings"
        )
    return min(n_recordings, MAX_FOLDS)


def out_of_fold_scores(
    train_normal: BlockSet,
    served_normal: BlockSet,
    recording_ids: tuple[str, ...],
    train: Callable[[np.ndarray, int], BlockScorer],
) -> ThresholdScores:
    """`train_normal` (training hop) and `served_normal` (served hop) hold the blocks of the same
    normal recordings, numbered as in `recording_ids`; `train(blocks, fold)` returns a model
    trained on normal `blocks` with everything else as the final model."""
    present = np.unique(served_normal.recording_of_clip)
    k = fold_count(present.size)
    fold_of = np.arange(present.size) % k
    clip, clip_recording, block, block_recording = [], [], [], []
    for fold in range(k):
        held_out = present[fold_of == fold]
        kept = np.setdiff1d(np.unique(train_normal.recording_of_clip), held_out)
        scorer = train(train_normal.of_recordings(kept).blocks, fold)
        scored = served_normal.of_recordings(held_out)
        scores = block_scores(scorer, scored.blocks)
        block.append(scores)
        block_recording.append(scored.recording_of_block)
        clip.append(scored.clip_means(scores))
        clip_recording.append(scored.recording_of_clip)
    return ThresholdScores(
        method="out_of_fold",
        folds=k,
        recording_ids=recording_ids,
        clip=np.concatenate(clip),
        clip_recording=np.concatenate(clip_recording),
        block=np.concatenate(block),
        block_recording=np.concatenate(block_recording),
    )

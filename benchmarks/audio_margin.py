"""Where stage 2 has something to do: after stage 1, the share of the labelled anomalous blocks
already above the margin a (where the hinge max(0, a - d) is zero), and where held-out normal
blocks lie against a. Writes benchmarks/results/audio_margin.json."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.audio_protocol import SEEDS, DataSet, train, write_results
from benchmarks.audio_sweep import DATA_SETS
from benchmarks.audio_uav import UAV
from service.bundle.loader import load_bundle
from service.scoring.audio import AudioScorer
from training.audio.clips import iter_clips
from training.audio.datasets import Recording
from training.audio.splits import split_recordings

ALL_DATA = {**DATA_SETS, UAV.name: UAV}


def _block_scores(
    scorer: AudioScorer, recordings: Sequence[Recording], data: DataSet
) -> np.ndarray:
    clips = iter_clips(recordings, scorer.manifest.features.sample_rate, data.clip_seconds)
    return np.concatenate([scorer.score_samples(c.samples).block_scores for c in clips])


def margin_row(data: DataSet, seed: int, work: Path) -> dict[str, Any]:
    """Stage 1 on the seed's split; the labelled anomalies are those of the largest count."""
    result = train(data, 0, "block", seed, work / f"{data.name}-{seed}")
    seen = split_recordings(data.open(), data.max_labelled, seed=seed).seen
    scorer = AudioScorer(load_bundle(result.bundle_dir))
    margin = result.manifest.training_margin.threshold
    sides = result.split.sides()
    scores = {
        "train normal": _block_scores(scorer, sides["train"], data),
        "held-out normal": _block_scores(scorer, sides["validation"] + sides["threshold"], data),
        "labelled anomalous": _block_scores(scorer, [r for r in seen if r.is_anomaly], data),
    }
    return {
        "data": data.name,
        "seed": seed,
        "margin": margin,
        **{f"above_a[{k}]": float(np.mean(v > margin)) for k, v in scores.items()},
        **{f"median_over_a[{k}]": float(np.median(v) / margin) for k, v in scores.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", nargs="+", choices=sorted(ALL_DATA), default=list(DATA_SETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--out", default="audio_margin", help="results file name (no suffix)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.data:
            for seed in args.seeds:
                rows.append(margin_row(ALL_DATA[name], seed, Path(work)))
                print(rows[-1], flush=True)
    path = write_results(
        args.out,
        {"load_start": load, "load_end": os.getloadavg()[0], "rows": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

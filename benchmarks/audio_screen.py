"""Cheap screen of audio detector candidates on the noisy UAV splits: one stage-1 and stage-2
training per backbone and seed (no threshold folds, no export), then several block scores and
serving hops computed from the same trained weights on the fixed test clips, clean and mixed
with other machines. Appends one JSON line per (backbone, seed, stage) to
benchmarks/results/audio_screen.jsonl and skips those already there, so it resumes."""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from benchmarks.audio_interference import interference_pool, mixed_clips
from benchmarks.audio_protocol import DATA_DIR, RESULTS_DIR, SAMPLE_RATE, DataSet, fixed_test
from benchmarks.audio_sweep import DATA_SETS
from benchmarks.audio_uav import LABELLED, UAV
from service.bundle.manifest import LogMelSettings
from service.features.logmel import LogMelExtractor
from training.audio.backbones import backbone_recipe
from training.audio.blocks import recording_blocks
from training.audio.clips import iter_clips
from training.audio.model import BlockScorer
from training.audio.splits import split_recordings
from training.audio.stages import FitSettings, block_scores, train_stage1, train_stage2
from training.thresholds import gamma_threshold

OUT = RESULTS_DIR / "audio_screen.jsonl"
CONDITIONS_DB = (0.0, -6.0)
BANK = 4096


def _recipe(name: str) -> tuple[LogMelSettings, int, tuple[int, ...]]:
    """Features, training hop, and the serving hops scored."""
    if name == "block":
        return backbone_recipe("block").features, 8, (32, 8)
    if name == "context":
        return backbone_recipe("context").features, 1, (1,)
    if name == "block8":
        f = backbone_recipe("block").features.model_copy(
            update={"frames_per_block": 8, "block_hop_frames": 8}
        )
        return f, 2, (8, 2)
    if name == "ctx128":
        f = backbone_recipe("block").features.model_copy(
            update={"frames_per_block": 5, "block_hop_frames": 1}
        )
        return f, 1, (1,)
    raise ValueError(name)


def _latent(scorer: BlockScorer, x: torch.Tensor) -> torch.Tensor:
    return scorer.autoencoder.encode((x - scorer.mean) / scorer.std)


def _block_variants(
    scorer: BlockScorer, blocks: np.ndarray, bank: torch.Tensor
) -> dict[str, np.ndarray]:
    with torch.no_grad():
        x = torch.from_numpy(blocks)
        _, band = scorer(x)
        z = _latent(scorer, x)
        d2 = torch.cdist(z, bank) ** 2
        knn1 = d2.min(dim=1).values
        knn5 = d2.topk(5, dim=1, largest=False).values.mean(dim=1)
        sorted_band = band.sort(dim=1).values
        n = band.shape[1]
        mse = band.mean(dim=1)
    return {
        "mse": mse.numpy(),
        "sqrt": mse.sqrt().numpy(),
        "log": torch.log(mse + 1e-3).numpy(),
        "median_band": sorted_band[:, n // 2].numpy(),
        "low_half_band": sorted_band[:, : n // 2].mean(dim=1).numpy(),
        "knn1": knn1.numpy(),
        "knn5": knn5.numpy(),
        "knn5_sqrt": knn5.sqrt().numpy(),
        "low_quarter_band": sorted_band[:, : n // 4].mean(dim=1).numpy(),
        "low_half_sqrt": sorted_band[:, : n // 2].mean(dim=1).sqrt().numpy(),
    }


def _clip_scores(
    scorer: BlockScorer,
    extractor: LogMelExtractor,
    samples: list[np.ndarray],
    hop: int,
    bank: torch.Tensor,
    scale: dict[str, float],
) -> dict[str, np.ndarray]:
    per_clip: dict[str, list[float]] = {}
    for s in samples:
        variants = _block_variants(scorer, extractor.clip_blocks(s, hop), bank)
        # Each part divided by its median on training normal blocks, then summed.
        variants["combo"] = (
            variants["low_half_band"] / scale["low_half_band"]
            + variants["knn5_sqrt"] / scale["knn5_sqrt"]
        )
        for name, values in variants.items():
            per_clip.setdefault(name, []).append(float(values.mean()))
    return {name: np.asarray(v) for name, v in per_clip.items()}


def _done() -> set[tuple[str, str, int, int]]:
    if not OUT.exists():
        return set()
    rows = [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()]
    return {(r.get("data", "uav_propeller"), r["backbone"], r["seed"], r["stage"]) for r in rows}


def run(data: DataSet, backbone: str, seed: int, pool: list[tuple[str, np.ndarray]]) -> None:
    done = _done()
    if (data.name, backbone, seed, 2) in done:
        return
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    features, train_hop, hops = _recipe(backbone)
    extractor = LogMelExtractor(features)
    test = fixed_test(data, seed)
    split = split_recordings(data.open(), LABELLED, seed=seed).without_threshold_side()
    assert not {r.recording_id for r in split.seen} & {r.recording_id for r in test}

    def blocks_of(side: str, anomalous: bool, hop: int | None) -> np.ndarray:
        recs = [r for r in split.sides()[side] if r.is_anomaly == anomalous]
        return recording_blocks(recs, extractor, data.clip_seconds, hop).blocks

    started = time.perf_counter()
    train_normal = blocks_of("train", False, train_hop)
    validation_normal = blocks_of("validation", False, None)
    train_anomalous = blocks_of("train", True, train_hop)
    validation_anomalous = blocks_of("validation", True, None)
    clips = list(iter_clips(test, SAMPLE_RATE, data.clip_seconds))
    labels = np.array([c.recording.is_anomaly for c in clips])
    clean = [c.samples for c in clips]
    conditions = {"clean": clean}
    for snr in CONDITIONS_DB if data.name == UAV.name else ():
        conditions[f"{snr:g} dB"] = mixed_clips(clean, pool, snr, seed)
    read_seconds = time.perf_counter() - started

    scorer = BlockScorer(features.n_mels, features.frames_per_block)
    scorer.set_standardisation(train_normal)
    fit1 = FitSettings(max_epochs=100, patience=10, quiet=True)
    fit2 = FitSettings(max_epochs=50, patience=10, quiet=True)
    bank_rng = np.random.default_rng(seed)
    bank_rows = bank_rng.choice(len(train_normal), min(BANK, len(train_normal)), replace=False)

    def evaluate(model: BlockScorer, stage: int, train_seconds: float) -> None:
        bank = _latent(model, torch.from_numpy(train_normal[bank_rows])).detach()
        # The bank's own blocks would be their own nearest neighbours: scale on other blocks.
        others = np.setdiff1d(np.arange(len(train_normal)), bank_rows)[:BANK]
        if others.size == 0:
            others = bank_rows
        reference = _block_variants(model, train_normal[others], bank)
        scale = {k: float(np.median(v)) for k, v in reference.items()}
        row: dict[str, Any] = {
            "data": data.name,
            "backbone": backbone,
            "seed": seed,
            "stage": stage,
            "train_seconds": train_seconds,
            "read_seconds": read_seconds,
            "load": os.getloadavg()[0],
            "auc": {},
        }
        for hop in hops:
            for condition, samples in conditions.items():
                scores = _clip_scores(model, extractor, samples, hop, bank, scale)
                for variant, values in scores.items():
                    key = f"hop{hop}/{variant}"
                    row["auc"].setdefault(key, {})[condition] = float(roc_auc_score(labels, values))
        with OUT.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(data.name, backbone, seed, stage, {k: v for k, v in row["auc"].items()}, flush=True)

    t0 = time.perf_counter()
    train_stage1(scorer, train_normal, validation_normal, fit1, generator)
    t1 = time.perf_counter() - t0
    if (data.name, backbone, seed, 1) not in done:
        evaluate(scorer, 1, t1)
    margin = gamma_threshold(block_scores(scorer, train_normal), 0.99, "screen").threshold
    stage2 = copy.deepcopy(scorer)
    t0 = time.perf_counter()
    train_stage2(
        stage2,
        train_normal,
        train_anomalous,
        validation_normal,
        validation_anomalous,
        margin,
        "hinge",
        fit2,
        generator,
    )
    evaluate(stage2, 2, t1 + time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", nargs="+", default=[UAV.name])
    parser.add_argument("--backbones", nargs="+", default=["block", "context"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    pool = interference_pool(DATA_DIR)
    sets = {UAV.name: UAV, **DATA_SETS}
    for seed in args.seeds:
        for name in args.data:
            for backbone in args.backbones:
                run(sets[name], backbone, seed, pool)
    print(f"appended to {Path(OUT)}")


if __name__ == "__main__":
    main()

"""UAV propeller recordings: stage 1 against stage 2 (5 labelled anomalous recordings) on both
backbones, or one of the paper's comparators in the autoencoder's place (--model), and PyOD's
AudioAE, on test recordings fixed per seed, clean and with other real machines mixed in at 6, 0
and -6 dB. Writes benchmarks/results/audio_uav.json."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.audio_interference import interference_pool, mixed_clips
from benchmarks.audio_peer import fit_peer, peer_scores
from benchmarks.audio_protocol import (
    DATA_DIR,
    SAMPLE_RATE,
    SEEDS,
    DataSet,
    check_unseen,
    figures,
    fixed_test,
    model_name,
    part_path,
    run_shards,
    scored_clips,
    train,
    write_document,
    write_results,
)
from service.bundle.loader import load_bundle
from service.bundle.manifest import AudioManifest
from service.scoring.audio import AudioScorer
from training.audio.backbones import BACKBONES, Backbone
from training.audio.clips import Clip, iter_clips
from training.audio.datasets import Recording
from training.audio.evaluation import evaluate_scores
from training.audio.model import BLOCK_SCORES, BlockScore
from training.audio.pipeline import AUDIO_MODELS, AudioModel

UAV = DataSet("uav_propeller", DATA_DIR / "audio" / "uav_propeller", None, 10.0, test_anomalies=14)
LABELLED = 5
SNRS_DB = (6.0, 0.0, -6.0)


def test_conditions(
    clips: list[Clip], pool: list[tuple[str, np.ndarray]], seed: int
) -> dict[str, list[np.ndarray]]:
    """The test clips clean and with the pool's machines mixed in at each of SNRS_DB."""
    clean = [c.samples for c in clips]
    conditions = {"clean": clean}
    for snr in SNRS_DB:
        conditions[f"{snr:g} dB"] = mixed_clips(clean, pool, snr, seed)
    return conditions


def _evaluate_all(
    score: Callable[[list[np.ndarray]], np.ndarray],
    thresholds: dict[str, float],
    default: str | None,
    clips: list[Clip],
    conditions: dict[str, list[np.ndarray]],
) -> dict[str, dict[str, Any]]:
    """Per condition: the figures at the default operating point's clip threshold (AUC and pAUC
    need none; without a default the threshold-dependent figures are None), and false alarms,
    recall and precision at every operating point."""
    index = [(c.recording.recording_id, c.index) for c in clips]
    test = list({c.recording.recording_id: c.recording for c in clips}.values())
    out = {}
    for name, samples in conditions.items():
        scored = scored_clips(test, index, score(samples))
        reports = {point: evaluate_scores(scored, "folders", t) for point, t in thresholds.items()}
        if default is None:
            # Any valid threshold: the figures that depend on it are dropped.
            row = figures(evaluate_scores(scored, "folders", 1.0))
            row.update(false_alarm_rate=None, recall=None)
        else:
            row = figures(reports[default])
        row["operating_points"] = {
            point: {
                "false_alarm_rate": report.false_alarm_rate,
                "recall": report.recall,
                "precision": report.precision,
            }
            for point, report in reports.items()
        }
        out[name] = row
    return out


def _bundle_scores(scorer: AudioScorer) -> Callable[[list[np.ndarray]], np.ndarray]:
    def score(samples: list[np.ndarray]) -> np.ndarray:
        return np.array([scorer.score_samples(x).clip_score for x in samples])

    return score


def _operating_points(manifest: AudioManifest) -> list[dict[str, Any]]:
    """How each of the bundle's thresholds was fitted and the per-clip false-alarm rate it
    predicts, to set beside the rate measured on the test clips."""
    return [
        {
            "name": point.name,
            "rule": point.rule,
            "target": point.target,
            "clip_threshold": point.thresholds["clip"],
            "fit": point.fit.model_dump(),
            "predicted_clip": (
                point.predicted["clip"].model_dump() if "clip" in point.predicted else None
            ),
        }
        for point in manifest.operating_points
    ]


def _peer_row(
    seed: int,
    train_normal: list[Recording],
    clips: list[Clip],
    conditions: dict[str, list[np.ndarray]],
) -> dict[str, Any]:
    """AudioAE on the same training normal clips. Auscult's thresholds are now fitted out of
    fold (no held-out threshold recordings), which the peer has no equivalent of, so it is
    compared on the threshold-free figures (AUC, pAUC) only."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    peer = fit_peer(train_normal, UAV.clip_seconds, seed)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    evaluated = _evaluate_all(
        lambda samples: peer_scores(peer, samples), {}, None, clips, conditions
    )
    return {
        "model": "pyod AudioAE",
        "stage": 1,
        "labelled": 0,
        "seed": seed,
        "train_seconds": seconds,
        "load_before": load,
        "r": None,
        "score_seconds_per_clip": (time.perf_counter() - started) / (len(clips) * len(conditions)),
        "conditions": evaluated,
    }


def run_seed(
    seed: int,
    pool: list[tuple[str, np.ndarray]],
    work: Path,
    backbones: tuple[Backbone, ...] = BACKBONES,
    counts: tuple[int, ...] = (0, LABELLED),
    score: BlockScore = "reconstruction",
    peer: bool = True,
    model: AudioModel = "autoencoder",
    data: DataSet = UAV,
) -> list[dict[str, Any]]:
    test = fixed_test(data, seed)
    clips = list(iter_clips(test, SAMPLE_RATE, data.clip_seconds))
    conditions = test_conditions(clips, pool, seed)
    rows: list[dict[str, Any]] = []
    for backbone in backbones:
        for labelled in counts:
            load = os.getloadavg()[0]
            result = train(
                data,
                labelled,
                backbone,
                seed,
                work / f"{model}-{backbone}-{labelled}-{seed}",
                score,
                model,
            )
            check_unseen(result, test)
            manifest = result.manifest
            thresholds = {p.name: p.thresholds["clip"] for p in manifest.operating_points}
            started = time.perf_counter()
            scorer = AudioScorer(load_bundle(result.bundle_dir))
            evaluated = _evaluate_all(
                _bundle_scores(scorer),
                thresholds,
                manifest.default_operating_point,
                clips,
                conditions,
            )
            n_scored = len(clips) * len(conditions)
            rows.append(
                {
                    "model": model_name(backbone, score, model),
                    "score": score,
                    # What the bundle serves, as its manifest records it.
                    "served_score": manifest.training.block_score,
                    "stage": 2 if labelled else 1,
                    "labelled": labelled,
                    "seed": seed,
                    "train_seconds": result.seconds,
                    "load_before": load,
                    "split": {side: len(r) for side, r in result.split.sides().items()},
                    "train_normal_clips": manifest.training.n_normal,
                    "train_anomalous_clips": manifest.training.n_anomaly,
                    "r": manifest.clip_decision.r,
                    "default_operating_point": manifest.default_operating_point,
                    "operating_points": _operating_points(manifest),
                    # Scoring cost through the bundle, as served: decode excluded, log-mel and
                    # ONNX Runtime included, per 10 s clip, at the load above.
                    "score_seconds_per_clip": (time.perf_counter() - started) / n_scored,
                    "conditions": evaluated,
                }
            )
            print(rows[-1], flush=True)
    if peer:
        # Every run of a seed has the same normal split, so the last run's serves the peer.
        rows.append(
            _peer_row(seed, [r for r in result.split.train if not r.is_anomaly], clips, conditions)
        )
        print(rows[-1], flush=True)
    return rows


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--out", default="audio_uav", help="results file name (no suffix)")
    parser.add_argument("--backbones", nargs="+", choices=BACKBONES, default=list(BACKBONES))
    parser.add_argument(
        "--labelled", type=int, nargs="+", default=[0, LABELLED], help="labelled counts trained"
    )
    parser.add_argument("--score", choices=BLOCK_SCORES, default="reconstruction")
    parser.add_argument(
        "--model",
        choices=AUDIO_MODELS,
        default="autoencoder",
        help="the weakly supervised autoencoder, or a comparator trained in its place",
    )
    parser.add_argument(
        "--no-peer",
        action="store_true",
        help="leave PyOD's AudioAE out (its rows of the same seeds are in audio_uav.json)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="processes (one torch thread each) that run the seeds side by side; the results "
        "file is written once, whole, with each process's command under `parts`",
    )
    parser.add_argument("--part", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def shard_arguments(args: argparse.Namespace) -> list[str]:
    """The arguments every shard process of a --jobs run gets, but for its seeds."""
    forwarded = ["--out", args.out, "--backbones", *args.backbones, "--score", args.score]
    forwarded += ["--model", args.model, "--labelled", *map(str, args.labelled)]
    return forwarded + (["--no-peer"] if args.no_peer else [])


def main() -> None:
    args = parse_arguments()
    if args.jobs > 1:
        merged, metadata = run_shards(
            "benchmarks.audio_uav", shard_arguments(args), args.seeds, args.jobs
        )
        print(f"wrote {write_results(args.out, {**metadata, 'rows': merged})}")
        return
    torch.set_num_threads(1)
    part = part_path(args.part)
    pool = interference_pool(DATA_DIR)
    load, started = os.getloadavg()[0], time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            rows += run_seed(
                seed,
                pool,
                Path(work),
                tuple(args.backbones),
                tuple(args.labelled),
                args.score,
                not args.no_peer,
                args.model,
            )
            # Rewritten after every seed, so a long run leaves its finished seeds behind.
            path = write_document(
                args.out,
                part,
                {
                    "data": str(UAV.path.relative_to(DATA_DIR)),
                    "clip_seconds": UAV.clip_seconds,
                    "labelled": LABELLED,
                    "interference": [name for name, _ in pool],
                    "cpu_cores": os.cpu_count(),
                    "load_start": load,
                    "load_end": os.getloadavg()[0],
                    "wall_seconds": time.perf_counter() - started,
                    "rows": rows,
                },
            )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

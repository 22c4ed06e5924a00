"""AUC against the number of labelled anomalous recordings (0, 1, 2, 5, all available) on
mimii_fan_id00 and each machine type of dcase2020_dev, both backbones, with the test recordings
fixed per seed across counts, and PyOD's AudioAE on the same splits. Writes
benchmarks/results/audio_sweep.json."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.audio_peer import fit_peer, peer_scores
from benchmarks.audio_protocol import (
    DATA_DIR,
    SAMPLE_RATE,
    SEEDS,
    DataSet,
    check_unseen,
    evaluate,
    figures,
    fixed_test,
    model_name,
    scored_clips,
    train,
    write_results,
)
from training.audio.backbones import BACKBONES, Backbone
from training.audio.clips import iter_clips
from training.audio.evaluation import evaluate_scores
from training.audio.model import BLOCK_SCORES, BlockScore
from training.audio.pipeline import AUDIO_MODELS, AudioModel

# 5 s clips: a DCASE type's single threshold recording then gives the two clips a Gamma fit
# needs. Half the anomalous recordings (rounded up) stay in every test.
CLIP_SECONDS = 5.0
DATA_SETS = {
    "mimii_fan_id00": DataSet(
        "mimii_fan_id00", DATA_DIR / "audio" / "mimii_fan_id00", None, CLIP_SECONDS, 10
    ),
    **{
        f"dcase_{machine}": DataSet(
            f"dcase_{machine}",
            DATA_DIR / "audio" / "dcase2020_dev",
            machine,
            CLIP_SECONDS,
            anomalies,
        )
        for machine, anomalies in (
            ("fan", 4),
            ("pump", 3),
            ("slider", 4),
            ("valve", 4),
            ("ToyCar", 4),
            ("ToyConveyor", 3),
        )
    },
}
COUNTS = (0, 1, 2, 5)


def _counts(data: DataSet) -> list[int]:
    return sorted({c for c in COUNTS if c < data.max_labelled} | {data.max_labelled})


def run_data_set(
    data: DataSet,
    backbones: list[Backbone],
    seeds: list[int],
    work: Path,
    counts: list[int] | None = None,
    score: BlockScore = "reconstruction",
    model: AudioModel = "autoencoder",
    peer: bool = True,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    layout = data.open().layout
    for seed in seeds:
        test = fixed_test(data, seed)
        for backbone in backbones:
            for labelled in counts if counts is not None else _counts(data):
                load = os.getloadavg()[0]
                result = train(
                    data, labelled, backbone, seed, work / f"{data.name}-{backbone}", score, model
                )
                check_unseen(result, test)
                started = time.perf_counter()
                evaluated = figures(evaluate(result.bundle_dir, test, data, layout))
                scoring = (time.perf_counter() - started) / (
                    evaluated["test_normal_clips"] + evaluated["test_anomalous_clips"]
                )
                rows.append(
                    {
                        "data": data.name,
                        "model": model_name(backbone, score, model),
                        "score": score,
                        "labelled": labelled,
                        "all_available": labelled == data.max_labelled,
                        "seed": seed,
                        "train_seconds": result.seconds,
                        "load_before": load,
                        "split": {side: len(r) for side, r in result.split.sides().items()},
                        "train_normal_clips": result.manifest.training.n_normal,
                        "train_anomalous_clips": result.manifest.training.n_anomaly,
                        "stage1_epochs": result.stage1.best_epoch,
                        "stage2_epochs": result.stage2.best_epoch if result.stage2 else None,
                        "r": result.manifest.clip_decision.r,
                        # Scoring through the bundle as served (log-mel and ONNX Runtime), per
                        # clip, at the load above.
                        "score_seconds_per_clip": scoring,
                        **evaluated,
                    }
                )
                print(rows[-1], flush=True)
        if not peer:
            continue
        # Every run of a seed has the same normal split, so the last run's serves the peer.
        load, started = os.getloadavg()[0], time.perf_counter()
        peer = fit_peer([r for r in result.split.train if not r.is_anomaly], CLIP_SECONDS, seed)
        seconds = time.perf_counter() - started
        clips = list(iter_clips(test, SAMPLE_RATE, CLIP_SECONDS))
        started = time.perf_counter()
        scored = scored_clips(
            test, [(c.recording.recording_id, c.index) for c in clips], peer_scores(peer, clips)
        )
        scoring = (time.perf_counter() - started) / len(clips)
        # Auscult's thresholds are fitted out of fold, with no held-out threshold recordings the
        # peer could be cut on the same way: it is compared on AUC and pAUC alone (any valid
        # threshold; the figures that depend on it are dropped).
        report = figures(evaluate_scores(scored, layout, 1.0))
        for dropped in ("false_alarm_rate", "recall"):
            report[dropped] = None
        rows.append(
            {
                "data": data.name,
                "model": "pyod AudioAE",
                "labelled": 0,
                "all_available": False,
                "seed": seed,
                "train_seconds": seconds,
                "load_before": load,
                "r": None,
                "score_seconds_per_clip": scoring,
                **report,
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", nargs="+", choices=sorted(DATA_SETS), default=list(DATA_SETS))
    parser.add_argument("--backbones", nargs="+", choices=BACKBONES, default=list(BACKBONES))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--out", default="audio_sweep", help="results file name (no suffix)")
    parser.add_argument(
        "--counts", type=int, nargs="+", default=None, help="labelled counts (default: all)"
    )
    parser.add_argument("--score", choices=BLOCK_SCORES, default="reconstruction")
    parser.add_argument("--model", choices=AUDIO_MODELS, default="autoencoder")
    parser.add_argument("--no-peer", action="store_true", help="leave PyOD's AudioAE out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load, started = os.getloadavg()[0], time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.data:
            rows += run_data_set(
                DATA_SETS[name],
                args.backbones,
                args.seeds,
                Path(work),
                args.counts,
                args.score,
                args.model,
                not args.no_peer,
            )
            # Rewritten after every data set, so a long run leaves its finished ones behind.
            path = write_results(
                args.out,
                {
                    "clip_seconds": CLIP_SECONDS,
                    "data_sets": {
                        done: {
                            "path": str(DATA_SETS[done].path.relative_to(DATA_DIR)),
                            "machine_type": DATA_SETS[done].machine_type,
                            "test_anomalous_recordings": DATA_SETS[done].test_anomalies,
                            "counts": _counts(DATA_SETS[done]),
                        }
                        for done in args.data[: args.data.index(name) + 1]
                    },
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

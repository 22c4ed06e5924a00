"""The paper's table 2: for r in 0.8, 0.95, 0.99 and 0.999, the margin a (the Gamma quantile r of
stage 1's reconstruction errors of the training normal blocks, stage 2's hinge margin) and the AUC
after stage 2; block backbone, reconstruction score, 5 labelled anomalous recordings, the test
recordings of audio_sweep / audio_uav. One stage 1 per seed serves the four margins. Each model
is exported to ONNX and its test clips scored through it as the service does (log-mel blocks,
clip score = mean block score); UAV clips also with interference at 6, 0 and -6 dB. Writes
benchmarks/results/audio_table2_<data>.json."""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from benchmarks.audio_interference import interference_pool
from benchmarks.audio_protocol import (
    DATA_DIR,
    SAMPLE_RATE,
    SEEDS,
    DataSet,
    figures,
    fixed_test,
    scored_clips,
    training_config,
    write_results,
)
from benchmarks.audio_sweep import DATA_SETS
from benchmarks.audio_uav import UAV, test_conditions
from service.features.logmel import LogMelExtractor
from training.audio.clips import Clip, iter_clips
from training.audio.datasets import Recording
from training.audio.evaluation import evaluate_scores
from training.audio.export import export_onnx
from training.audio.model import BlockScorer
from training.audio.pipeline import prepare_training
from training.audio.stages import continue_with_stage2, train_stage1_model

RS = (0.8, 0.95, 0.99, 0.999)
LABELLED = 5
TABLE2_SETS = {"mimii_fan_id00": DATA_SETS["mimii_fan_id00"], UAV.name: UAV}


def uptime() -> str:
    """The machine's `uptime` line (load averages over 1, 5 and 15 minutes)."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()


def onnx_clip_scores(
    scorer: BlockScorer, extractor: LogMelExtractor, samples: Sequence[np.ndarray], work: Path
) -> np.ndarray:
    """Clip scores through the model exported to ONNX, as the service computes them: the clip's
    log-mel blocks, one score each, their mean."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(export_onnx(scorer, work / "model.onnx")),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    return np.array(
        [
            float(session.run(["score"], {"blocks": extractor.clip_blocks(x)})[0].mean())
            for x in samples
        ]
    )


def _evaluated(
    scorer: BlockScorer,
    extractor: LogMelExtractor,
    test: Sequence[Recording],
    clips: list[Clip],
    conditions: dict[str, list[np.ndarray]],
    data: DataSet,
    work: Path,
) -> dict[str, dict[str, Any]]:
    """AUC and pAUC per test condition; no threshold is fitted here, so the figures that need
    one (false alarms, recall) are dropped."""
    index = [(c.recording.recording_id, c.index) for c in clips]
    layout = data.open().layout
    out = {}
    for name, samples in conditions.items():
        scored = scored_clips(test, index, onnx_clip_scores(scorer, extractor, samples, work))
        row = figures(evaluate_scores(scored, layout, 1.0))
        for dropped in ("false_alarm_rate", "recall"):
            del row[dropped]
        out[name] = row
    return out


def run_seed(
    data: DataSet,
    seed: int,
    pool: list[tuple[str, np.ndarray]],
    work: Path,
    rs: Sequence[float] = RS,
    labelled: int = LABELLED,
) -> list[dict[str, Any]]:
    """Stage 1 once, then stage 2 from it at each r: one row for stage 1 (r None) and one per r."""
    config = training_config(data, labelled, "block", seed, work / "unused", "reconstruction")
    prepared = prepare_training(config)
    test = fixed_test(data, seed)
    seen = {r.recording_id for r in prepared.split.seen}
    if seen & {r.recording_id for r in test}:
        raise RuntimeError(f"seed {seed}: training saw fixed test recordings")
    clips = list(iter_clips(test, SAMPLE_RATE, data.clip_seconds))
    clean = {"clean": [c.samples for c in clips]}
    conditions = test_conditions(clips, pool, seed) if pool else clean
    blocks = prepared.training_blocks()
    features = prepared.features
    common = {
        "data": data.name,
        "seed": seed,
        "labelled": labelled,
        "split": {side: len(r) for side, r in prepared.split.sides().items()},
        "train_normal_blocks": len(blocks.train_normal),
        "train_anomalous_blocks": len(blocks.train_anomalous),
    }
    load, started = os.getloadavg()[0], time.perf_counter()
    torch.set_num_threads(config.threads)
    stage1 = train_stage1_model(
        blocks, features.n_mels, features.frames_per_block, config.stage1, seed
    )
    rows = [
        {
            **common,
            "r": None,
            "stage": 1,
            "stage1_epochs": stage1.report.best_epoch,
            "train_seconds": time.perf_counter() - started,
            "load_before": load,
            "conditions": _evaluated(
                stage1.scorer, prepared.extractor, test, clips, conditions, data, work
            ),
        }
    ]
    print(rows[-1], flush=True)
    for r in rs:
        load, started = os.getloadavg()[0], time.perf_counter()
        trained = continue_with_stage2(stage1, blocks, r, config.loss, config.stage2)
        assert trained.stage2 is not None
        rows.append(
            {
                **common,
                "r": r,
                "stage": 2,
                "margin": trained.margin.threshold,
                "gamma_shape": trained.margin.shape,
                "gamma_scale": trained.margin.scale,
                "stage1_epochs": stage1.report.best_epoch,
                "stage2_epochs": trained.stage2.best_epoch,
                # Stage 2 alone: stage 1 is the row above.
                "train_seconds": time.perf_counter() - started,
                "load_before": load,
                "conditions": _evaluated(
                    trained.scorer, prepared.extractor, test, clips, conditions, data, work
                ),
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", choices=sorted(TABLE2_SETS), default="mimii_fan_id00")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--r", type=float, nargs="+", default=list(RS), help="margin quantiles")
    parser.add_argument("--out", help="results file name (no suffix); default audio_table2_DATA")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = TABLE2_SETS[args.data]
    # Interference only where audio_uav measures it.
    pool = interference_pool(DATA_DIR) if data is UAV else []
    load, started, uptime_start = os.getloadavg()[0], time.perf_counter(), uptime()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            rows += run_seed(data, seed, pool, Path(work), args.r)
            # Rewritten after every seed, so a long run leaves its finished seeds behind.
            path = write_results(
                args.out or f"audio_table2_{data.name}",
                {
                    "data": str(data.path.relative_to(DATA_DIR)),
                    "clip_seconds": data.clip_seconds,
                    "labelled": LABELLED,
                    "rs": list(args.r),
                    "seeds_done": args.seeds[: args.seeds.index(seed) + 1],
                    "interference": [name for name, _ in pool],
                    "cpu_cores": os.cpu_count(),
                    "load_start": load,
                    "load_end": os.getloadavg()[0],
                    "uptime_start": uptime_start,
                    "uptime_end": uptime(),
                    "wall_seconds": time.perf_counter() - started,
                    "rows": rows,
                },
            )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

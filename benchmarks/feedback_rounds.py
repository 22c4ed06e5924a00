"""The feedback loop offline: a stage-1 bundle (normal recordings only) scores a pool of field
clips, an operator labels 5 of its unlabelled alarms per round with their true labels (or, in
`uav_clean_wrong_labels`, 5 random clips with the wrong labels), and
`retrain_bundle` fine-tunes and promotes (or refuses); after 0, 1, 2 and 3 rounds the served
bundle's AUC and false-alarm rate are measured on recordings never used by anything. UAV clean,
UAV with other machines mixed in, and MIMII fan. Resumable: every finished (data, seed) run is
kept in benchmarks/results/feedback_rounds.json and skipped when run again."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from sklearn.metrics import roc_auc_score

from benchmarks.audio_interference import interference_pool, mixed_clips
from benchmarks.audio_protocol import DATA_DIR, RESULTS_DIR, SAMPLE_RATE, command_line
from service.bundle.loader import load_bundle
from service.bundle.manifest import AudioManifest
from service.scoring.audio import AudioScorer
from training.audio.clips import Clip, iter_clips
from training.audio.datasets import Recording
from training.audio.pipeline import AudioTrainingConfig, train_audio_bundle
from training.audio.splits import SplitFractions
from training.audio.stages import FitSettings
from training.retrain.champion import RetrainError, served_bundle
from training.retrain.labels import Label, LabelledClip
from training.retrain.normal_data import BundleRecordings
from training.retrain.pipeline import RetrainConfig, retrain_bundle

RESULTS = RESULTS_DIR / "feedback_rounds.json"
ROUNDS = 3
LABELS_PER_ROUND = 5
SNR_DB = 6.0
STAGE1 = FitSettings(max_epochs=50, patience=5, quiet=True)
STAGE2 = FitSettings(max_epochs=20, patience=5, quiet=True)


@dataclass(frozen=True)
class Condition:
    name: str
    folder: str
    clip_seconds: float | None
    # Field and evaluation clips get another real machine mixed in at SNR_DB (training is clean).
    interfered: bool
    # Share of normal recordings the bundle holds out (halved into field and evaluation).
    test_fraction: float = 0.25
    # A saboteur instead of a technician: random field clips, each given the wrong label.
    wrong_labels: bool = False


CONDITIONS = {
    c.name: c
    for c in (
        Condition("uav_clean", "uav_propeller", 10.0, False),
        Condition("uav_interfered", "uav_propeller", 10.0, True),
        Condition("mimii_fan", "mimii_fan_id00", None, False, test_fraction=0.5),
        Condition("uav_clean_wrong_labels", "uav_propeller", 10.0, False, wrong_labels=True),
    )
}


def _halves(recordings: Sequence[Recording], seed: int) -> tuple[list[Recording], list[Recording]]:
    """Field and evaluation recordings: each label (and anomaly class) dealt alternately after a
    seeded shuffle, so both halves hold normal and anomalous recordings."""
    rng = np.random.default_rng(seed + 7919)
    field: list[Recording] = []
    evaluation: list[Recording] = []
    for group in sorted({(r.label, r.group) for r in recordings}):
        members = sorted((r for r in recordings if (r.label, r.group) == group), key=str)
        for i, index in enumerate(rng.permutation(len(members))):
            (field if i % 2 == 0 else evaluation).append(members[index])
    return field, evaluation


def _clips(
    condition: Condition, recordings: Sequence[Recording], pool: Any, seed: int
) -> tuple[list[Clip], list[np.ndarray]]:
    clips = list(iter_clips(recordings, SAMPLE_RATE, condition.clip_seconds))
    samples = [c.samples for c in clips]
    if condition.interfered:
        samples = mixed_clips(samples, pool, SNR_DB, seed)
    return clips, samples


def _evaluate(bundle_dir: Path, clips: list[Clip], samples: list[np.ndarray]) -> dict[str, Any]:
    bundle = load_bundle(bundle_dir)
    assert isinstance(bundle.manifest, AudioManifest)
    scorer = AudioScorer(bundle)
    scores = np.array([scorer.score_samples(x).clip_score for x in samples])
    y = np.array([c.recording.is_anomaly for c in clips])
    threshold = bundle.manifest.thresholds()[0]
    return {
        "version": bundle.manifest.version,
        "auc": float(roc_auc_score(y, scores)),
        "false_alarm_rate": float(np.mean(scores[~y] > threshold)),
        "recall": float(np.mean(scores[y] > threshold)),
        "normal_clips": int((~y).sum()),
        "anomalous_clips": int(y.sum()),
    }


def _to_label(
    bundle_dir: Path,
    samples: list[np.ndarray],
    done: set[int],
    rng: np.random.Generator,
    at_random: bool,
) -> tuple[list[int], int]:
    """This round's clips for the technician, and how many unlabelled alarms there were: up to
    LABELS_PER_ROUND unlabelled alarms at random, topped up with the unlabelled clips that
    score highest (those nearest an alarm) when the alarms are fewer."""
    bundle = load_bundle(bundle_dir)
    assert isinstance(bundle.manifest, AudioManifest)
    scorer = AudioScorer(bundle)
    threshold = bundle.manifest.thresholds()[0]
    scores = {i: scorer.score_samples(x).clip_score for i, x in enumerate(samples) if i not in done}
    alarms = [i for i, score in scores.items() if score > threshold]
    if at_random:
        return [int(i) for i in rng.permutation(list(scores))[:LABELS_PER_ROUND]], len(alarms)
    picked = [int(i) for i in rng.permutation(alarms)[:LABELS_PER_ROUND]]
    nearest = sorted((i for i in scores if i not in picked), key=lambda i: -scores[i])
    return picked + nearest[: LABELS_PER_ROUND - len(picked)], len(alarms)


def _label(clip: Clip, wrong: bool) -> Label:
    if clip.recording.is_anomaly == wrong:
        return "normal"
    return "anomaly"


def run_one(condition: Condition, seed: int, work: Path) -> dict[str, Any]:
    started, load = time.perf_counter(), os.getloadavg()[0]
    data = DATA_DIR / "audio" / condition.folder
    models = work / "models"
    models.mkdir()
    name = f"{condition.name.replace('_', '-')}-{seed}"
    trained = train_audio_bundle(
        AudioTrainingConfig(
            data=data,
            out=models / name,
            clip_seconds=condition.clip_seconds,
            threshold_fit="held_out",
            fractions=SplitFractions(test=condition.test_fraction),
            stage1=STAGE1,
            stage2=STAGE2,
            seed=seed,
            name=name,
        )
    )
    stage1_seconds = time.perf_counter() - started
    split = trained.split
    field, evaluation = _halves(split.test, seed)
    pool = interference_pool(DATA_DIR) if condition.interfered else None
    field_clips, field_samples = _clips(condition, field, pool, seed)
    eval_clips, eval_samples = _clips(condition, evaluation, pool, seed + 1000)
    recordings = BundleRecordings(
        train=tuple(r for r in split.train if not r.is_anomaly),
        validation=tuple(r for r in split.validation if not r.is_anomaly),
        held_out=tuple(split.threshold) + tuple(r for r in field if not r.is_anomaly),
        data=data,
        held_out_anomalous=tuple(r for r in field if r.is_anomaly),
    )
    audio = work / "events"
    audio.mkdir()
    paths = []
    for i, samples in enumerate(field_samples):
        paths.append(audio / f"{i}.flac")
        sf.write(paths[-1], samples, SAMPLE_RATE)

    rng = np.random.default_rng(seed + 104729)
    labelled: list[int] = []
    rounds = [
        {
            "round": 0,
            "labels": 0,
            "evaluation": _evaluate(trained.bundle_dir, eval_clips, eval_samples),
        }
    ]
    for round_number in range(1, ROUNDS + 1):
        champion_dir, _ = served_bundle(models, name)
        picked, alarms = _to_label(
            champion_dir, field_samples, set(labelled), rng, condition.wrong_labels
        )
        labelled += picked
        clips = [
            LabelledClip(str(i), _label(field_clips[i], condition.wrong_labels), paths[i])
            for i in labelled
        ]
        row: dict[str, Any] = {
            "round": round_number,
            "alarms_unlabelled": alarms,
            "labels": len(labelled),
            "labelled_anomalies": sum(c.is_anomaly for c in clips),
        }
        round_started = time.perf_counter()
        try:
            result = retrain_bundle(
                RetrainConfig(
                    models=models,
                    model=name,
                    min_anomalies=2,
                    stage2=STAGE2,
                    seed=seed * 100 + round_number,
                    recordings=recordings,
                ),
                clips,
            )
            row.update(
                promoted=result.decision.promoted,
                reason=result.decision.reason,
                figures=result.decision.figures,
            )
        except RetrainError as exc:
            row.update(promoted=False, reason=f"not run: {exc}", figures={})
        row["retrain_seconds"] = time.perf_counter() - round_started
        served, _ = served_bundle(models, name)
        row["evaluation"] = _evaluate(served, eval_clips, eval_samples)
        rounds.append(row)
        print(f"{condition.name} seed {seed} round {round_number}: {row['reason'][:160]}")
    return {
        "data": condition.name,
        "seed": seed,
        "stage1_seconds": stage1_seconds,
        "seconds": time.perf_counter() - started,
        "load_start": load,
        "load_end": os.getloadavg()[0],
        "recordings": {
            "train_normal": len(recordings.train),
            "validation_normal": len(recordings.validation),
            "threshold_normal": len(split.threshold),
            "field": {
                "normal": sum(not r.is_anomaly for r in field),
                "anomalous": sum(r.is_anomaly for r in field),
            },
            "evaluation": {
                "normal": sum(not r.is_anomaly for r in evaluation),
                "anomalous": sum(r.is_anomaly for r in evaluation),
            },
        },
        "field_clips": len(field_clips),
        "rounds": rounds,
    }


def _load() -> dict[str, Any]:
    if RESULTS.is_file():
        document: dict[str, Any] = json.loads(RESULTS.read_text(encoding="utf-8"))
        return document
    return {"runs": []}


def _mean_sd(values: Sequence[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def table(document: dict[str, Any]) -> str:
    """The markdown table docs/RESULTS.md shows: per data set and round, the served bundle's
    figures on the evaluation clips over the seeds run, and what the promotion rule did."""
    lines = [
        "| data | round | seeds | labels so far (anomalous / normal) | promoted in | AUC "
        "| false-alarm rate | recall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for data in CONDITIONS:
        runs = sorted((r for r in document["runs"] if r["data"] == data), key=lambda r: r["seed"])
        for number in range(ROUNDS + 1):
            rows = [r["rounds"][number] for r in runs]
            if not rows:
                continue
            evaluation = [row["evaluation"] for row in rows]
            labels = "-"
            promoted = "-"
            if number:
                anomalies = [row["labelled_anomalies"] for row in rows]
                normal = [row["labels"] - row["labelled_anomalies"] for row in rows]
                labels = f"{np.mean(anomalies):.1f} / {np.mean(normal):.1f}"
                promoted = f"{sum(row['promoted'] for row in rows)} of {len(rows)}"
            lines.append(
                f"| {data} | {number} | {len(rows)} | {labels} | {promoted} "
                f"| {_mean_sd([e['auc'] for e in evaluation])} "
                f"| {_mean_sd([e['false_alarm_rate'] for e in evaluation])} "
                f"| {_mean_sd([e['recall'] for e in evaluation])} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", nargs="+", choices=sorted(CONDITIONS), default=sorted(CONDITIONS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    parser.add_argument(
        "--stop-at", default=None, metavar="HH:MM", help="start no run after this UTC time"
    )
    parser.add_argument(
        "--table", action="store_true", help="print the results table and run nothing"
    )
    args = parser.parse_args(argv)
    document = _load()
    if args.table:
        print(table(document))
        return 0
    done = {(r["data"], r["seed"]) for r in document["runs"]}
    for seed in args.seeds:
        for data in args.data:
            if (data, seed) in done:
                continue
            if args.stop_at and datetime.now(UTC).strftime("%H:%M") >= args.stop_at:
                print(f"stopping: it is past {args.stop_at} UTC")
                return 0
            with tempfile.TemporaryDirectory(prefix="feedback-rounds-") as work:
                run = run_one(CONDITIONS[data], seed, Path(work))
            document = _load()
            document["runs"] = [*document["runs"], {"command": command_line(), **run}]
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

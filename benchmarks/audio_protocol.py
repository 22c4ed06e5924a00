"""The protocol the audio experiments behind docs/RESULTS.md share: a test split fixed per seed
across labelled-anomaly counts, training through the pipeline, scoring through the ONNX bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.bundle.loader import load_bundle
from service.bundle.manifest import AudioManifest
from training.audio.backbones import Backbone
from training.audio.datasets import Dataset, Layout, Recording, open_dataset
from training.audio.evaluation import (
    EvaluationReport,
    ScoredClip,
    evaluate_scores,
    score_recordings,
)
from training.audio.model import BlockScore
from training.audio.pipeline import (
    AudioModel,
    AudioTrainingConfig,
    AudioTrainingResult,
    train_audio_bundle,
)
from training.audio.splits import split_recordings
from training.audio.stages import FitSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("AUSCULT_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))
RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
SEEDS = (0, 1, 2, 3)
R = 0.99
# Every data set here is 16 kHz; the pipeline's default rate.
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class DataSet:
    """One data set of an experiment and how its recordings are cut and held out."""

    name: str
    path: Path
    machine_type: str | None
    clip_seconds: float | None
    # Anomalous recordings every count's test keeps; the rest may be labelled for training.
    test_anomalies: int

    def open(self) -> Dataset:
        return open_dataset(self.path, self.machine_type)

    @property
    def max_labelled(self) -> int:
        return len(self.open().anomalous) - self.test_anomalies


def fixed_test(data: DataSet, seed: int) -> tuple[Recording, ...]:
    """The test recordings of the split with the most labelled anomalies. The pipeline deals
    labelled anomalies from one seeded order that does not depend on their count, so every
    smaller count leaves these recordings unseen too (`check_unseen` verifies it per run)."""
    return split_recordings(data.open(), data.max_labelled, seed=seed).test


def training_config(
    data: DataSet,
    labelled: int,
    backbone: Backbone,
    seed: int,
    out: Path,
    score: BlockScore = "reconstruction",
    model: AudioModel = "autoencoder",
) -> AudioTrainingConfig:
    """The CLI's defaults but for the backbone, the block score and the model, and one torch
    thread."""
    return AudioTrainingConfig(
        data=data.path,
        out=out,
        labeled_anomalies=labelled,
        r=R,
        machine_type=data.machine_type,
        clip_seconds=data.clip_seconds,
        backbone=backbone,
        score=score,
        model=model,
        sample_rate=SAMPLE_RATE,
        stage1=FitSettings(max_epochs=100, patience=10, quiet=True),
        stage2=FitSettings(max_epochs=50, patience=10, quiet=True),
        seed=seed,
        name=f"{data.name}-{backbone}-{labelled}-{seed}",
        threads=1,
        overwrite=True,
    )


def train(
    data: DataSet,
    labelled: int,
    backbone: Backbone,
    seed: int,
    out: Path,
    score: BlockScore = "reconstruction",
    model: AudioModel = "autoencoder",
) -> AudioTrainingResult:
    """One bundle through `train_audio_bundle`, configured by `training_config`."""
    return train_audio_bundle(training_config(data, labelled, backbone, seed, out, score, model))


def model_name(backbone: str, score: BlockScore, model: AudioModel = "autoencoder") -> str:
    """How result rows name an Auscult model: the backbone, and the block score unless it is
    the paper's reconstruction error, or the comparator and its backbone."""
    if model != "autoencoder":
        return f"{model} {backbone}"
    return f"auscult {backbone}" + ("" if score == "reconstruction" else f" {score}")


def check_unseen(result: AudioTrainingResult, test: Sequence[Recording]) -> None:
    """Refuse a run whose bundle saw any recording of the fixed test set."""
    seen = {r.recording_id for r in result.split.seen}
    overlap = sorted(seen & {r.recording_id for r in test})
    if overlap:
        raise RuntimeError(f"{result.bundle_dir} saw fixed test recordings {overlap}")


def evaluate(
    bundle_dir: Path, test: Sequence[Recording], data: DataSet, layout: Layout
) -> EvaluationReport:
    """Score the fixed test clips through the exported bundle, as `auscult evaluate audio`."""
    bundle = load_bundle(bundle_dir)
    assert isinstance(bundle.manifest, AudioManifest)
    return evaluate_scores(
        score_recordings(bundle, test, data.clip_seconds),
        layout,
        bundle.manifest.clip_decision.threshold,
    )


def figures(report: EvaluationReport) -> dict[str, Any]:
    """What a result row keeps of an evaluation: pooled AUC over all test clips (the headline
    for these small sets), the per-ID mean where DCASE has one, and the clip verdicts."""
    return {
        "auc": report.pooled_auc,
        "auc_id_mean": report.auc if report.averaging != "pooled" else None,
        "pauc": report.pauc,
        "false_alarm_rate": report.false_alarm_rate,
        "recall": report.recall,
        "test_normal_clips": report.n_normal,
        "test_anomalous_clips": report.n_anomaly,
        "test_recordings": report.n_recordings,
    }


def scored_clips(
    test: Sequence[Recording], clip_index: Sequence[tuple[str, int]], scores: np.ndarray
) -> list[ScoredClip]:
    """ScoredClips of scores computed outside `score_recordings` (mixed clips, the peer)."""
    by_id = {r.recording_id: r for r in test}
    return [
        ScoredClip(by_id[rid], index, float(score))
        for (rid, index), score in zip(clip_index, scores, strict=True)
    ]


def command_line() -> str:
    """This process's command as the docs write it (`python -m benchmarks.NAME ...`)."""
    script = Path(sys.argv[0]).resolve()
    if script.suffix == ".py" and script.is_relative_to(PROJECT_ROOT):
        module = ".".join(script.relative_to(PROJECT_ROOT).with_suffix("").parts)
        return " ".join(["python", "-m", module, *sys.argv[1:]])
    return " ".join(sys.argv)


def write_results(name: str, document: dict[str, Any]) -> Path:
    """Write benchmarks/results/NAME.json whole, with the command that produced it."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {"command": command_line(), **document}
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path


def part_path(value: str | None) -> Path | None:
    """The `--part` file a shard process writes its document to (set by `run_shards` only)."""
    return Path(value) if value else None


def write_document(name: str, part: Path | None, document: dict[str, Any]) -> Path:
    """A shard writes its part file; a whole run writes benchmarks/results/NAME.json."""
    if part is None:
        return write_results(name, document)
    part.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return part


def seed_shards(seeds: Sequence[int], jobs: int) -> list[list[int]]:
    """Seeds dealt round-robin, so shards of unequal cost (later seeds) stay balanced."""
    return [list(seeds[i::jobs]) for i in range(min(jobs, len(seeds)))]


def run_shards(
    module: str, args: Sequence[str], seeds: Sequence[int], jobs: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run `python -m MODULE ARGS --seeds SHARD` in `jobs` processes side by side and return
    their rows (by seed) and the run's metadata: the first part's fields, the whole run's load
    and wall time, and each part's command, load and wall time."""
    load, started = os.getloadavg()[0], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"{module.rsplit('.', 1)[-1]}-parts-") as parts_dir:
        runs = []
        for i, shard in enumerate(seed_shards(seeds, jobs)):
            part = Path(parts_dir) / f"part{i}.json"
            command = [*args, "--seeds", *map(str, shard)]
            process = subprocess.Popen(
                [sys.executable, "-m", module, *command, "--part", str(part)], cwd=PROJECT_ROOT
            )
            runs.append((" ".join(["python", "-m", module, *command]), part, process))
            print(f"shard {i}: {runs[-1][0]} -> {part}", flush=True)
        failed = [command for command, _, process in runs if process.wait() != 0]
        if failed:
            raise RuntimeError(f"shard processes failed: {failed}")
        documents = [(command, json.loads(part.read_text())) for command, part, _ in runs]
    rows = sorted(
        (row for _, document in documents for row in document["rows"]), key=lambda r: r["seed"]
    )
    metadata = {
        **{k: v for k, v in documents[0][1].items() if k != "rows"},
        "load_start": load,
        "load_end": os.getloadavg()[0],
        "wall_seconds": time.perf_counter() - started,
        "jobs": len(documents),
        "parts": [
            {"command": command, **{k: d[k] for k in ("load_start", "load_end", "wall_seconds")}}
            for command, d in documents
        ],
    }
    return rows, metadata

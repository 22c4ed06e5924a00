"""Measure stage 2's loss variants (hinge, squared hinge, distance) against the stage-1 model they
start from, on real recordings, and write the table into docs/TRAINING.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from service.bundle.loader import load_bundle
from service.bundle.manifest import AudioManifest
from training.audio.evaluation import evaluate_scores, score_recordings
from training.audio.losses import CONTRASTIVE_LOSSES
from training.audio.pipeline import AudioTrainingConfig, AudioTrainingResult, train_audio_bundle
from training.audio.stages import FitSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("AUSCULT_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))
DOC = PROJECT_ROOT / "docs" / "TRAINING.md"
SECTION = "## Measured: stage 2's loss"
# (data set under audio/, machine type for DCASE roots, clip seconds, labelled anomalies)
DATA_SETS: dict[str, tuple[str, str | None, float, int]] = {
    "mimii_fan_id00": ("mimii_fan_id00", None, 2.0, 5),
    "dcase_valve": ("dcase2020_dev", "valve", 2.0, 3),
    "dcase_ToyCar": ("dcase2020_dev", "ToyCar", 2.0, 3),
}


def _stage1_on_same_test(reference: AudioTrainingResult, run: AudioTrainingResult) -> float | None:
    """The stage-1-only bundle scored on the test recordings of a stage-2 run (the normal split
    is the same for any number of labelled anomalies under one seed)."""
    bundle = load_bundle(reference.bundle_dir)
    assert isinstance(bundle.manifest, AudioManifest)
    report = evaluate_scores(
        score_recordings(bundle, run.split.test, run.manifest.training.clip_seconds),
        run.dataset.layout,
        bundle.manifest.clip_decision.threshold,
    )
    return report.auc


def _row(
    name: str, variant: str, seed: int, auc: float | None, result: AudioTrainingResult
) -> dict[str, Any]:
    evaluation = result.manifest.evaluation
    return {
        "data": name,
        "variant": variant,
        "seed": seed,
        "auc": auc,
        "pauc": evaluation.pauc if evaluation and variant != "stage 1 only" else None,
        "f1": evaluation.f1 if evaluation and variant != "stage 1 only" else None,
        "stage2_epochs": result.stage2.best_epoch if result.stage2 else None,
        "seconds": result.seconds,
    }


def run(data_dir: Path, seeds: list[int], names: list[str], work: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in names:
        folder, machine_type, clip_seconds, labelled = DATA_SETS[name]
        for seed in seeds:
            base = AudioTrainingConfig(
                data=data_dir / "audio" / folder,
                out=work / f"{name}-{seed}-stage1",
                machine_type=machine_type,
                clip_seconds=clip_seconds,
                seed=seed,
                threads=1,
                stage1=FitSettings(quiet=True),
                stage2=FitSettings(max_epochs=50, quiet=True),
            )
            reference = train_audio_bundle(base)
            for loss in CONTRASTIVE_LOSSES:
                result = train_audio_bundle(
                    replace(
                        base,
                        out=work / f"{name}-{seed}-{loss}",
                        labeled_anomalies=labelled,
                        loss=loss,
                    )
                )
                if loss == CONTRASTIVE_LOSSES[0]:
                    rows.append(
                        _row(
                            name,
                            "stage 1 only",
                            seed,
                            _stage1_on_same_test(reference, result),
                            reference,
                        )
                    )
                evaluation = result.manifest.evaluation
                rows.append(_row(name, loss, seed, evaluation.auc if evaluation else None, result))
                print(json.dumps(rows[-1]), flush=True)
    return rows


def _mean(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "n/a"
    if len(present) == 1:
        return f"{present[0]:.3f}"
    return f"{statistics.mean(present):.3f} ± {statistics.stdev(present):.3f}"


def _seeds(rows: list[dict[str, Any]]) -> str:
    by_data: dict[str, set[int]] = {}
    for row in rows:
        by_data.setdefault(row["data"], set()).add(row["seed"])
    return "; ".join(
        f"{data} {', '.join(map(str, sorted(seeds)))}" for data, seeds in sorted(by_data.items())
    )


def _paired(rows: list[dict[str, Any]], data: str, variant: str) -> str:
    """Mean AUC difference to the paper's hinge loss over the seeds both have a figure for."""
    auc = {(r["variant"], r["seed"]): r["auc"] for r in rows if r["data"] == data}
    differences = [
        auc[(variant, seed)] - auc[("hinge", seed)]
        for (name, seed) in auc
        if name == variant
        and auc[(variant, seed)] is not None
        and auc.get(("hinge", seed)) is not None
    ]
    if variant == "hinge" or not differences:
        return ""
    better = sum(d > 0 for d in differences)
    return f"{statistics.mean(differences):+.3f} (higher in {better} of {len(differences)})"


def table(rows: list[dict[str, Any]], load: tuple[float, float]) -> str:
    lines = [
        SECTION,
        "",
        f"Written by `benchmarks/audio_stage2_loss.py` on {platform.machine()} with "
        f"{os.cpu_count()} CPU cores shared with other work (load average {load[0]:.1f} at the "
        f"start, {load[1]:.1f} at the end), torch {torch.__version__}, 1 torch thread; "
        f"seeds: {_seeds(rows)} (each seed draws its own split and initial weights). Block "
        "backbone, default settings otherwise. AUC is on the held-out test recordings of each "
        "run (mean ± standard deviation over seeds); `stage 1 only` is the model stage 2 "
        "started from, scored on the same test recordings; the paired column compares each "
        "variant with `hinge` seed by seed. F1 averages only the runs whose threshold flagged "
        "at least one clip (n/a: none did). Rows of earlier runs (`--previous`) are included; "
        "the load average is this run's.",
        "",
        "| data | variant | AUC | AUC minus hinge, same seed | pAUC | F1 at the clip threshold "
        "| stage-2 best epoch | seconds per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted(
        {(r["data"], r["variant"]) for r in rows},
        key=lambda k: (k[0], k[1] != "stage 1 only", k[1]),
    )
    for data, variant in keys:
        chosen = [r for r in rows if (r["data"], r["variant"]) == (data, variant)]
        folder, machine_type, clip_seconds, labelled = DATA_SETS[data]
        label = f"{folder}{'/' + machine_type if machine_type else ''}, {clip_seconds:g} s clips"
        label += f", {labelled} labelled"
        lines.append(
            f"| {label} | {variant} | {_mean([r['auc'] for r in chosen])} | "
            f"{_paired(rows, data, variant)} | {_mean([r['pauc'] for r in chosen])} | "
            f"{_mean([r['f1'] for r in chosen])} | "
            f"{_mean([r['stage2_epochs'] for r in chosen])} | "
            f"{_mean([r['seconds'] for r in chosen])} |"
        )
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    document = DOC.read_text(encoding="utf-8")
    start = document.find(SECTION)
    if start < 0:
        document = document.rstrip("\n") + "\n\n" + text
    else:
        end = document.find("\n## ", start + len(SECTION))
        document = document[:start] + text + (document[end + 1 :] if end >= 0 else "")
    DOC.write_text(document, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", nargs="+", choices=sorted(DATA_SETS), default=sorted(DATA_SETS))
    parser.add_argument("--results", type=Path, default=None, help="also write the rows as JSON")
    parser.add_argument(
        "--previous",
        type=Path,
        nargs="*",
        default=[],
        help="rows of earlier runs (--results files) to tabulate with this run's",
    )
    parser.add_argument(
        "--no-doc", action="store_true", help="print the table, leave the doc alone"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work:
        rows = run(args.data_dir, args.seeds, args.data, Path(work))
    if args.results:
        args.results.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    for path in args.previous:
        rows += json.loads(path.read_text(encoding="utf-8"))
    text = table(rows, (started, os.getloadavg()[0]))
    print(text)
    if not args.no_doc:
        write_section(text)


if __name__ == "__main__":
    main()

"""The recordings a bundle was trained and checked on, found again from its split.json: the data
folder it names (or the one given, when the data has moved) and the recording ids, which are
paths inside that folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.audio.datasets import AUDIO_SUFFIXES, Label, Recording
from training.audio.splits import SPLIT_FILE
from training.retrain.champion import RetrainError

# The sides whose normal recordings trained the weights or checked early stopping; the others
# (threshold, test) the weights never trained on.
TRAINED_SIDES = ("train", "validation")
HELD_OUT_SIDES = ("threshold", "test")


@dataclass(frozen=True)
class BundleRecordings:
    """Normal recordings for the fine-tuning (train), its early stopping (validation), and those
    the bundle's weights never trained on (held_out: thresholds and the promotion check); and
    the anomalous test recordings of the data, where it has any (a check labels cannot fool)."""

    train: tuple[Recording, ...]
    validation: tuple[Recording, ...]
    held_out: tuple[Recording, ...]
    data: Path
    held_out_anomalous: tuple[Recording, ...] = ()
    # Recordings split.json lists that are no longer at `data`.
    missing: int = 0


def _find(data: Path, recording_id: str) -> Path | None:
    for suffix in sorted(AUDIO_SUFFIXES):
        path = data / f"{recording_id}{suffix}"
        if path.is_file():
            return path
    return None


def bundle_recordings(bundle_dir: Path, data: Path | None = None) -> BundleRecordings:
    """The bundle's recordings that are still reachable, at `data` or else where split.json
    says they were read from."""
    path = Path(bundle_dir) / SPLIT_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        root = Path(data) if data is not None else Path(document["data"])
        listed = document["recordings"]
        sides = {
            side: [e["id"] for e in listed[side] if e["label"] == "normal"]
            for side in (*TRAINED_SIDES, *HELD_OUT_SIDES)
        }
        sides["anomalous"] = [e["id"] for e in listed["test"] if e["label"] == "anomaly"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RetrainError(
            f"bundle {bundle_dir} has no readable {SPLIT_FILE}, so the normal data it was "
            f"trained on cannot be found: {exc}"
        ) from exc
    found: dict[str, list[Recording]] = {}
    missing = 0
    for side, ids in sides.items():
        found[side] = []
        for recording_id in ids:
            where = _find(root, recording_id)
            if where is None:
                missing += 1
                continue
            group = recording_id.split("/", 1)[0]
            label: Label = "anomaly" if side == "anomalous" else "normal"
            found[side].append(Recording(where, recording_id, label, group))
    held_out = tuple(found["threshold"] + found["test"])
    if not found["train"] or not found["validation"] or len(held_out) < 2:
        raise RetrainError(
            f"the normal recordings bundle {bundle_dir} was trained on are not reachable at "
            f"{root} ({len(found['train'])} training, {len(found['validation'])} validation and "
            f"{len(held_out)} held-out found, {missing} missing); retraining needs at least one "
            "of each and two held-out ones: pass --data with the folder they now live in"
        )
    return BundleRecordings(
        tuple(found["train"]),
        tuple(found["validation"]),
        held_out,
        root,
        tuple(found["anomalous"]),
        missing,
    )


def halves(
    recordings: tuple[Recording, ...], seed: int
) -> tuple[tuple[Recording, ...], tuple[Recording, ...]]:
    """A seeded split of held-out recordings by recording: the first half fits the challenger's
    thresholds, the second checks its false alarms, so neither check rests on its own fit."""
    order = np.random.default_rng(seed).permutation(len(recordings))
    cut = (len(recordings) + 1) // 2
    shuffled = [recordings[i] for i in order]
    return tuple(shuffled[:cut]), tuple(shuffled[cut:])

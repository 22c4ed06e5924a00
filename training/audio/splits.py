"""Split a data set by recording (never by clip or block) into training, validation, threshold
and test recordings, and record the split in the bundle as `split.json`."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.audio.datasets import Dataset, DatasetError, Recording

SPLIT_FILE = "split.json"
SEEN_SIDES = ("train", "validation", "threshold")
# Of the labelled anomalous recordings, this share (rounded) checks stage 2's early stopping.
ANOMALY_VALIDATION_SHARE = 0.2


@dataclass(frozen=True)
class SplitFractions:
    """Shares of the normal recordings. Where the data has its own test partition (DCASE
    `test/`), `test` is unused and the other shares apply to the `train/` recordings."""

    validation: float = 0.1
    threshold: float = 0.15
    test: float = 0.25

    def __post_init__(self) -> None:
        for name in ("validation", "threshold", "test"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"the {name} fraction must lie between 0 and 1, got {value}")
        if self.validation + self.threshold + self.test >= 1.0:
            raise ValueError("the validation, threshold and test fractions leave no training data")


@dataclass(frozen=True)
class RecordingSplit:
    """Normal and labelled anomalous recordings for training and validation; normal ones only
    for the threshold; normal and unlabelled anomalous ones for the test."""

    train: tuple[Recording, ...]
    validation: tuple[Recording, ...]
    threshold: tuple[Recording, ...]
    test: tuple[Recording, ...]

    def sides(self) -> dict[str, tuple[Recording, ...]]:
        return {
            "train": self.train,
            "validation": self.validation,
            "threshold": self.threshold,
            "test": self.test,
        }

    def without_threshold_side(self) -> RecordingSplit:
        """The split for out-of-fold thresholds: the threshold recordings train too."""
        return RecordingSplit(
            train=self.threshold + self.train,
            validation=self.validation,
            threshold=(),
            test=self.test,
        )

    @property
    def seen(self) -> tuple[Recording, ...]:
        """Every recording that shaped the bundle: weights, early stopping or thresholds."""
        return self.train + self.validation + self.threshold


def _stratified_order(recordings: Sequence[Recording], rng: np.random.Generator) -> list[Recording]:
    """Shuffle within each group, then deal the groups out in turn, so any leading share of the
    order holds every group in about its proportion."""
    by_group: dict[str, list[Recording]] = defaultdict(list)
    for recording in sorted(recordings, key=lambda r: r.recording_id):
        by_group[recording.group].append(recording)
    queues = []
    for group in sorted(by_group):
        members = by_group[group]
        queues.append([members[i] for i in rng.permutation(len(members))])
    order: list[Recording] = []
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop(0))
    return order


def _count(n: int, fraction: float) -> int:
    return max(1, round(n * fraction))


def split_recordings(
    dataset: Dataset,
    labeled_anomalies: int,
    fractions: SplitFractions | None = None,
    seed: int = 0,
) -> RecordingSplit:
    """Seeded split by recording; `labeled_anomalies` anomalous recordings go to training."""
    fractions = fractions or SplitFractions()
    rng = np.random.default_rng(seed)
    normal = dataset.normal
    own_train = [r for r in normal if r.partition == "train"]
    if own_train:
        pool = _stratified_order(own_train, rng)
        test_normal = [r for r in normal if r.partition != "train"]
        needed = 3
    else:
        pool = _stratified_order(normal, rng)
        n_test = _count(len(pool), fractions.test)
        test_normal, pool = pool[:n_test], pool[n_test:]
        needed = 4
    base = len(own_train) if own_train else len(normal)
    n_threshold = _count(base, fractions.threshold)
    n_validation = _count(base, fractions.validation)
    if len(pool) - n_threshold - n_validation < 1 or not test_normal:
        raise DatasetError(
            f"{dataset.root} has {len(normal)} normal recordings; splitting by recording needs "
            f"at least {needed} (training, validation, threshold"
            + (", test)" if needed == 4 else ") plus normal test recordings in test/)")
            + " - cut long recordings into clips with --clip-seconds instead"
        )
    threshold, validation, train = (
        pool[:n_threshold],
        pool[n_threshold : n_threshold + n_validation],
        pool[n_threshold + n_validation :],
    )

    anomalous = _stratified_order(dataset.anomalous, rng)
    if labeled_anomalies < 0:
        raise DatasetError(f"--labeled-anomalies must be 0 or more, got {labeled_anomalies}")
    if labeled_anomalies > len(anomalous):
        raise DatasetError(
            f"asked for {labeled_anomalies} labelled anomalous recordings but {dataset.root} "
            f"has only {len(anomalous)}"
        )
    if anomalous and labeled_anomalies == len(anomalous):
        raise DatasetError(
            f"using all {len(anomalous)} anomalous recordings of {dataset.root} for training "
            f"leaves none to test on; use at most {len(anomalous) - 1}"
        )
    labelled, test_anomalous = anomalous[:labeled_anomalies], anomalous[labeled_anomalies:]
    n_anomaly_validation = int(labeled_anomalies * ANOMALY_VALIDATION_SHARE + 0.5)
    cut = labeled_anomalies - n_anomaly_validation
    return RecordingSplit(
        train=tuple(train + labelled[:cut]),
        validation=tuple(validation + labelled[cut:]),
        threshold=tuple(threshold),
        test=tuple(test_normal + test_anomalous),
    )


def write_split(bundle_dir: Path, split: RecordingSplit, dataset: Dataset, seed: int) -> Path:
    """Write which recordings each side used, so evaluation can leave out what the bundle saw."""
    document = {
        "machine_type": dataset.machine_type,
        "layout": dataset.layout,
        "data": str(dataset.root),
        "seed": seed,
        "recordings": {
            side: [{"id": r.recording_id, "label": r.label} for r in recordings]
            for side, recordings in split.sides().items()
        },
    }
    path = Path(bundle_dir) / SPLIT_FILE
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class SeenRecordings:
    machine_type: str
    layout: str
    recording_ids: frozenset[str]


def read_seen_recordings(bundle_dir: Path) -> SeenRecordings | None:
    """The recordings a bundle saw in training, or None when it has no split.json."""
    path = Path(bundle_dir) / SPLIT_FILE
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        ids = frozenset(
            entry["id"] for side in SEEN_SIDES for entry in document["recordings"][side]
        )
        return SeenRecordings(document["machine_type"], document["layout"], ids)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path} is not a readable split file: {exc}") from exc


def unseen_recordings(
    dataset: Dataset, bundle_dir: Path, include_seen: bool
) -> tuple[list[Recording], str]:
    """The recordings of `dataset` to score for `bundle_dir` (those its split.json does not list
    as seen, when the bundle was trained on this data), and a line saying which were left out
    and why."""
    recordings = list(dataset.recordings)
    if include_seen:
        return recordings, "scoring all recordings (--include-seen), also those the bundle saw"
    seen = read_seen_recordings(bundle_dir)
    if seen is None:
        return recordings, "the bundle has no split.json: scoring all recordings"
    # A folder layout's machine name is only its folder's name, so a renamed copy of the
    # training data must still lose the recordings the bundle saw.
    same_data = seen.layout == dataset.layout and (
        dataset.layout == "folders" or seen.machine_type == dataset.machine_type
    )
    if not same_data:
        return recordings, (
            f"the bundle was trained on {seen.machine_type} ({seen.layout} layout), not on "
            "this data: scoring all recordings"
        )
    unseen = [r for r in recordings if r.recording_id not in seen.recording_ids]
    return unseen, (
        f"scoring only the {len(unseen)} recordings the bundle never saw; "
        f"{len(recordings) - len(unseen)} that split.json lists as used for training, "
        "validation or thresholds are left out (--include-seen scores them too)"
    )

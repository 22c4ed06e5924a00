"""Splits are by recording: no recording is on two sides, they are seeded, and they refuse data
too small to split."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.audio.datasets import Dataset, DatasetError, Recording
from training.audio.splits import (
    SplitFractions,
    read_seen_recordings,
    split_recordings,
    write_split,
)


def _dataset(n_normal: int, anomalies: dict[str, int], train_partition: int = 0) -> Dataset:
    recordings = [
        Recording(
            path=Path(f"/data/normal/n{i}.wav"),
            recording_id=f"normal/n{i}",
            label="normal",
            group="normal",
            partition=("train" if i < train_partition else "test") if train_partition else None,
        )
        for i in range(n_normal)
    ]
    for group, count in anomalies.items():
        recordings += [
            Recording(
                path=Path(f"/data/{group}/a{i}.wav"),
                recording_id=f"{group}/a{i}",
                label="anomaly",
                group=group,
                partition="test" if train_partition else None,
            )
            for i in range(count)
        ]
    return Dataset(Path("/data"), "folders", "machine", tuple(recordings))


def test_no_recording_is_on_two_sides_and_every_one_is_used() -> None:
    dataset = _dataset(39, {"1_broken": 8, "2_broken": 6, "3_4_broken": 5})
    split = split_recordings(dataset, labeled_anomalies=5, seed=3)
    ids = [r.recording_id for side in split.sides().values() for r in side]
    assert len(ids) == len(set(ids)) == len(dataset.recordings)
    assert not any(r.is_anomaly for r in split.threshold)
    labelled = [r for r in split.seen if r.is_anomaly]
    assert len(labelled) == 5
    # One in five labelled anomalies checks stage 2's early stopping.
    assert sum(r.is_anomaly for r in split.validation) == 1
    assert sum(r.is_anomaly for r in split.test) == 14
    # The labelled anomalies are dealt out over the classes.
    assert {r.group for r in labelled} == {"1_broken", "2_broken", "3_4_broken"}
    assert [sum(not r.is_anomaly for r in side) for side in split.sides().values()] == [
        19,
        4,
        6,
        10,
    ]


def test_splits_are_seeded() -> None:
    dataset = _dataset(20, {"broken": 6})
    first = split_recordings(dataset, 2, seed=1)
    assert split_recordings(dataset, 2, seed=1) == first
    assert split_recordings(dataset, 2, seed=2) != first


def test_dcase_train_partition_feeds_training_and_test_partition_the_test() -> None:
    dataset = _dataset(30, {"id_00": 4}, train_partition=20)
    split = split_recordings(dataset, labeled_anomalies=2, seed=0)
    assert {r.partition for r in split.train + split.validation if not r.is_anomaly} == {"train"}
    assert {r.partition for r in split.threshold} == {"train"}
    assert [r.partition for r in split.test if not r.is_anomaly] == ["test"] * 10
    assert sum(r.is_anomaly for r in split.test) == 2


def test_too_small_or_too_greedy_requests_are_refused() -> None:
    with pytest.raises(DatasetError, match="at least 4"):
        split_recordings(_dataset(3, {"broken": 2}), 0)
    with pytest.raises(DatasetError, match="asked for 5 labelled anomalous recordings"):
        split_recordings(_dataset(10, {"broken": 3}), 5)
    with pytest.raises(DatasetError, match="leaves none to test on; use at most 2"):
        split_recordings(_dataset(10, {"broken": 3}), 3)
    with pytest.raises(DatasetError, match="must be 0 or more"):
        split_recordings(_dataset(10, {"broken": 3}), -1)
    with pytest.raises(ValueError, match="leave no training data"):
        SplitFractions(validation=0.3, threshold=0.3, test=0.4)


def test_split_file_lists_what_the_bundle_saw(tmp_path: Path) -> None:
    dataset = _dataset(12, {"broken": 4})
    split = split_recordings(dataset, 2, seed=0)
    write_split(tmp_path, split, dataset, seed=0)
    seen = read_seen_recordings(tmp_path)
    assert seen is not None
    assert seen.recording_ids == {r.recording_id for r in split.seen}
    assert not seen.recording_ids & {r.recording_id for r in split.test}
    assert read_seen_recordings(tmp_path / "elsewhere") is None
    (tmp_path / "split.json").write_text("{}")
    with pytest.raises(DatasetError, match="not a readable split file"):
        read_seen_recordings(tmp_path)

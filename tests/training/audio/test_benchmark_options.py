"""The audio benchmarks' options reach training: `audio_uav --model` trains the comparator it
names (in one process and through its shards), and `audio_table2` trains stage 2 at each r it is
given, from one stage 1, on a small generated data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import audio_table2, audio_uav
from benchmarks.audio_protocol import DataSet
from training.audio.synthetic import write_dcase_tree


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> DataSet:
    """Two toy pumps, 2 s clips: 6 anomalous recordings, 3 of them kept for every test."""
    root = tmp_path_factory.mktemp("pumps")
    write_dcase_tree(
        root,
        train_normal=6,
        test_normal=3,
        test_anomaly=3,
        seconds=2.0,
        anomaly="shifted_harmonics",
        seed=2,
    )
    return DataSet("small_pump", root / "toy_pump", None, None, test_anomalies=3)


def _pool() -> list[tuple[str, np.ndarray]]:
    return [("noise", np.random.default_rng(0).normal(0, 0.1, 48000).astype(np.float32))]


def test_uav_run_trains_the_model_it_is_given(small_set: DataSet, tmp_path: Path) -> None:
    rows = audio_uav.run_seed(
        0,
        _pool(),
        tmp_path,
        ("block",),
        (0,),
        peer=False,
        model="deep_svdd",
        data=small_set,
    )
    (row,) = rows
    assert row["model"] == "deep_svdd block"
    # What the bundle itself says it serves, not the name the benchmark gave it.
    assert row["served_score"] == "deep_svdd"
    assert set(row["conditions"]) == {"clean", "6 dB", "0 dB", "-6 dB"}


def test_uav_shards_get_the_model() -> None:
    args = audio_uav.parse_arguments(["--model", "usad", "--jobs", "2", "--no-peer"])
    shard = audio_uav.parse_arguments([*audio_uav.shard_arguments(args), "--seeds", "1"])
    assert (shard.model, shard.no_peer, shard.seeds) == ("usad", True, [1])


def test_table2_trains_stage2_at_each_r_from_one_stage1(small_set: DataSet, tmp_path: Path) -> None:
    rows = audio_table2.run_seed(small_set, 0, [], tmp_path, rs=(0.8, 0.999), labelled=2)
    assert [(r["stage"], r["r"]) for r in rows] == [(1, None), (2, 0.8), (2, 0.999)]
    low, high = rows[1], rows[2]
    assert 0 < low["margin"] < high["margin"]
    # One stage 1 behind every margin.
    assert rows[0]["stage1_epochs"] == low["stage1_epochs"] == high["stage1_epochs"]
    aucs = [r["conditions"]["clean"]["auc"] for r in rows]
    assert all(0.0 <= a <= 1.0 for a in aucs)
    assert low["conditions"]["clean"]["test_anomalous_clips"] > 0

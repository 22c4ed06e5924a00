"""Layouts are recognised from the folder itself; unusable folders are refused with a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.realdata import real_data
from training.audio.datasets import DatasetError, open_dataset
from training.audio.synthetic import write_dcase_tree, write_folder_tree


def _touch_wav(path: Path, seconds: float = 0.1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), dtype=np.float32), 16000)


def test_dcase_machine_folder_gives_labels_ids_and_partitions(tmp_path: Path) -> None:
    folder = write_dcase_tree(
        tmp_path,
        machine_type="fan",
        machine_ids=(0, 4),
        train_normal=2,
        test_normal=1,
        test_anomaly=1,
        seconds=0.2,
    )
    dataset = open_dataset(folder)
    assert (dataset.layout, dataset.machine_type, dataset.root) == ("dcase", "fan", folder)
    by_id = {r.recording_id: r for r in dataset.recordings}
    assert len(by_id) == 8
    anomaly = by_id["test/anomaly_id_04_00000000"]
    assert (anomaly.label, anomaly.group, anomaly.partition) == ("anomaly", "id_04", "test")
    normal = by_id["train/normal_id_00_00000001"]
    assert (normal.label, normal.group, normal.partition) == ("normal", "id_00", "train")


def test_dcase_root_needs_a_machine_type_when_it_holds_several(tmp_path: Path) -> None:
    for machine_type in ("fan", "pump"):
        write_dcase_tree(
            tmp_path,
            machine_type=machine_type,
            machine_ids=(0,),
            train_normal=1,
            test_normal=1,
            test_anomaly=1,
            seconds=0.2,
        )
    with pytest.raises(
        DatasetError, match="machine types fan, pump; choose one with --machine-type"
    ):
        open_dataset(tmp_path)
    assert open_dataset(tmp_path, "pump").root == tmp_path / "pump"
    assert open_dataset(tmp_path, preferred_machine_type="fan").machine_type == "fan"
    with pytest.raises(DatasetError, match="no DCASE machine type 'valve'"):
        open_dataset(tmp_path, "valve")
    with pytest.raises(DatasetError, match="not 'pump'"):
        open_dataset(tmp_path / "fan", "pump")


def test_folder_layout_ignores_folders_without_audio_files(tmp_path: Path) -> None:
    root = write_folder_tree(
        tmp_path / "drone", normal=2, anomalies={"1_broken": ("click", 1)}, seconds=0.2
    )
    # MIMII's multichannel/ holds class-like subfolders but no audio of its own.
    _touch_wav(root / "multichannel" / "normal" / "00000000.wav")
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not audio")
    dataset = open_dataset(root)
    assert (dataset.layout, dataset.machine_type) == ("folders", "drone")
    assert sorted(r.recording_id for r in dataset.recordings) == [
        "1_broken/rec_000",
        "normal/rec_000",
        "normal/rec_001",
    ]
    assert {r.group for r in dataset.anomalous} == {"1_broken"}
    assert all(r.partition is None for r in dataset.recordings)
    assert open_dataset(root, "quadcopter").machine_type == "quadcopter"


def test_refusals_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="is empty"):
        open_dataset(tmp_path / "empty")
    _touch_wav(tmp_path / "loose" / "a.wav")
    with pytest.raises(DatasetError, match="cannot recognise the layout"):
        open_dataset(tmp_path / "loose")
    _touch_wav(tmp_path / "bad" / "test" / "clip_7.wav")
    with pytest.raises(DatasetError, match=r"normal_id_00_00000000\.wav"):
        open_dataset(tmp_path / "bad")
    _touch_wav(tmp_path / "only_anomalies" / "test" / "anomaly_id_00_00000000.wav")
    with pytest.raises(DatasetError, match="no normal recordings"):
        open_dataset(tmp_path / "only_anomalies")


@pytest.mark.real_data
def test_real_data_sets_are_recognised() -> None:
    uav = open_dataset(real_data("audio/uav_propeller"))
    assert (uav.layout, len(uav.normal), len(uav.anomalous)) == ("folders", 39, 19)
    assert {r.group for r in uav.anomalous} == {"1_broken", "2_broken", "3_4_broken"}
    fan = open_dataset(real_data("audio/mimii_fan_id00"))
    assert (len(fan.normal), len(fan.anomalous)) == (20, 20)
    assert not any("multichannel" in r.recording_id for r in fan.recordings)
    dcase = open_dataset(real_data("audio/dcase2020_dev"), "fan")
    assert (dcase.layout, len(dcase.normal), len(dcase.anomalous)) == ("dcase", 9, 8)
    assert {r.group for r in dcase.recordings} == {"id_00", "id_02", "id_04", "id_06"}

"""Every loader on generated files in its data set's layout, and on the real data where present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.realdata import real_data
from tests.training.windows.data_files import (
    SKAB_COLUMNS,
    labels_for,
    write_csv_data,
    write_psm,
    write_skab,
    write_smd,
    write_telemanom,
)
from training.windows.loaders import load_data
from training.windows.loaders.smd import smd_machines
from training.windows.loaders.ucr import ucr_series


@pytest.mark.parametrize("compress", [True, False])
def test_smd_machine_with_labels_and_interpretation(tmp_path: Path, compress: bool) -> None:
    test = write_smd(tmp_path, "machine-1-1", compress=compress)
    write_smd(tmp_path, "machine-1-10", compress=compress)
    write_smd(tmp_path, "machine-1-2", compress=compress)
    assert smd_machines(tmp_path) == ["machine-1-1", "machine-1-2", "machine-1-10"]
    data = load_data("smd", tmp_path, "machine-1-1")
    assert data.channels == tuple(f"metric_{i}" for i in range(1, 6))
    assert data.train[0].values.shape == (300, 5)
    np.testing.assert_allclose(data.test_values, test, atol=1e-6)
    np.testing.assert_array_equal(data.test_labels, labels_for(300, [(100, 120)]))
    (event,) = data.interpretations
    assert (event.start, event.end, event.channels) == (100, 119, (3, 4))


def test_smd_names_the_missing_machine_and_those_present(tmp_path: Path) -> None:
    write_smd(tmp_path, "machine-2-1")
    with pytest.raises(FileNotFoundError, match=r"machine-9-9.*present: machine-2-1"):
        load_data("smd", tmp_path, "machine-9-9")
    with pytest.raises(ValueError, match="name one"):
        load_data("smd", tmp_path)


@pytest.mark.parametrize("compress", [True, False])
def test_telemanom_joins_one_spacecrafts_channels(tmp_path: Path, compress: bool) -> None:
    write_telemanom(tmp_path, compress=compress)
    msl = load_data("msl", tmp_path)
    assert msl.channels == ("dim_0", "dim_1", "dim_2", "dim_3")
    assert msl.train[0].values.shape == (350, 4)
    # M-1 (250 test steps, anomaly 10-19 inclusive) then C-2 (120 steps, 0-4 and 100-119).
    expected = np.concatenate([labels_for(250, [(10, 20)]), labels_for(120, [(0, 5), (100, 120)])])
    np.testing.assert_array_equal(msl.test_labels, expected)
    smap = load_data("smap", tmp_path)
    assert smap.test_values.shape == (90, 3)
    assert smap.test_labels.sum() == 2


def test_telemanom_refuses_ranges_outside_the_channel(tmp_path: Path) -> None:
    write_telemanom(tmp_path, compress=False)
    table = tmp_path / "labeled_anomalies.csv"
    table.write_text(table.read_text().replace("[[5, 6]]", "[[5, 95]]"))
    with pytest.raises(ValueError, match=r"A-1: range \[5, 95\] is outside 0..89"):
        load_data("smap", tmp_path)


def test_psm_fills_gaps_forward(tmp_path: Path) -> None:
    write_psm(tmp_path)
    data = load_data("psm", tmp_path)
    assert data.channels == ("feature_0", "feature_1", "feature_2")
    train = data.train[0].values
    assert not np.isnan(train).any()
    assert train[10, 0] == train[9, 0]
    assert data.test_labels.sum() == 10


def test_psm_refuses_a_label_file_of_the_wrong_length(tmp_path: Path) -> None:
    write_psm(tmp_path)
    path = tmp_path / "test_label.csv"
    path.write_text("\n".join(path.read_text().splitlines()[:-5]) + "\n")
    with pytest.raises(ValueError, match="115 labels for 120 test rows"):
        load_data("psm", tmp_path)


def test_skab_trains_on_normal_operation_and_tests_each_experiment(tmp_path: Path) -> None:
    write_skab(tmp_path)
    data = load_data("skab", tmp_path)
    assert data.channels == tuple(SKAB_COLUMNS)
    assert data.train[0].values.shape == (200, 3)
    assert [part.name for part in data.test] == ["valve1/0.csv", "valve1/1.csv", "other/2.csv"]
    assert data.test_labels.sum() == 30
    valve = load_data("skab", tmp_path / "data", "valve1")
    assert len(valve.test) == 2


def test_csv_reads_channels_and_labels(tmp_path: Path) -> None:
    labels = write_csv_data(tmp_path, steps=200)
    data = load_data("csv", tmp_path)
    assert data.channels == ("sensor_0", "sensor_1", "sensor_2")
    assert data.train[0].values.shape == (200, 3)
    np.testing.assert_array_equal(data.test_labels, labels)


def test_csv_accepts_folders_of_recordings(tmp_path: Path) -> None:
    write_csv_data(tmp_path / "single", steps=120)
    for split in ("train", "test"):
        (tmp_path / "many" / split).mkdir(parents=True)
        for n in (1, 2):
            text = (tmp_path / "single" / f"{split}.csv").read_text()
            (tmp_path / "many" / split / f"run{n}.csv").write_text(text)
    data = load_data("csv", tmp_path / "many")
    assert [p.name for p in data.train] == ["run1.csv", "run2.csv"]
    assert data.test_values.shape == (240, 3)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("sensor_2", "other", 1), r"channels .* differ from the training"),
        (lambda t: t.replace(",0\n", ",2\n", 1), "must hold only 0 and 1"),
        (lambda t: t.replace(",label", ",status"), "has no 'label' column"),
    ],
)
def test_csv_says_what_is_wrong_with_a_test_file(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    write_csv_data(tmp_path, steps=50)
    path = tmp_path / "test.csv"
    path.write_text(edit(path.read_text()))
    with pytest.raises(ValueError, match=message):
        load_data("csv", tmp_path)


def test_csv_points_at_a_field_that_is_not_a_number(tmp_path: Path) -> None:
    write_csv_data(tmp_path, steps=50)
    path = tmp_path / "train.csv"
    lines = path.read_text().splitlines()
    fields = lines[3].split(",")
    fields[2] = "n/a"
    lines[3] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"train.csv, line 4, column 'sensor_1': 'n/a'"):
        load_data("csv", tmp_path)


def test_unknown_format_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown data format 'xls'"):
        load_data("xls", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_data("csv", tmp_path / "nowhere")


@pytest.mark.real_data
def test_real_msl_matches_the_anomaly_transformer_release() -> None:
    data = load_data("msl", real_data("timeseries/MSL"))
    assert data.train[0].values.shape == (58317, 55)
    assert data.test_values.shape == (73729, 55)
    assert data.test_labels.mean() == pytest.approx(0.1053, abs=1e-3)


@pytest.mark.real_data
def test_real_smd_machines_and_real_skab() -> None:
    root = real_data("timeseries/SMD")
    machines = smd_machines(root)
    assert len(machines) == 19
    data = load_data("smd", root, machines[0])
    assert len(data.channels) == 38
    assert data.test_values.shape[0] == data.test_labels.shape[0]
    assert data.interpretations
    skab = load_data("skab", real_data("timeseries/SKAB"))
    assert len(skab.channels) == 8
    assert len(skab.test) == 34


def test_ucr_splits_at_the_training_end_and_labels_the_named_range(tmp_path: Path) -> None:
    values = np.arange(500, dtype=float)
    np.savetxt(tmp_path / "007_UCR_Anomaly_Pump3_200_310_330.txt", values)
    np.savetxt(tmp_path / "012_UCR_Anomaly_Fan1_100_150_160.txt", values[:300])
    assert ucr_series(tmp_path) == ["Pump3", "Fan1"]
    for subset in ("Pump3", "007"):
        data = load_data("ucr", tmp_path, subset)
        assert data.channels == ("value",)
        np.testing.assert_array_equal(data.train[0].values[:, 0], values[:200])
        np.testing.assert_array_equal(data.test_values[:, 0], values[200:])
        # Whole-series steps 310-329 are test steps 110-129.
        np.testing.assert_array_equal(data.test_labels, labels_for(300, [(110, 130)]))
    with pytest.raises(FileNotFoundError, match=r"more than one UCR series.*Pump3, Fan1"):
        load_data("ucr", tmp_path)
    np.savetxt(tmp_path / "013_UCR_Anomaly_Bad_100_90_95.txt", values)
    with pytest.raises(ValueError, match="train end <= anomaly start"):
        load_data("ucr", tmp_path, "Bad")


@pytest.mark.real_data
def test_real_ucr_series() -> None:
    root = real_data("timeseries/UCR")
    names = ucr_series(root)
    assert names == [f"InternalBleeding{i}" for i in range(16, 20)]
    data = load_data("ucr", root, "InternalBleeding17")
    assert data.train[0].values.shape == (1600, 1)
    assert data.test_labels.sum() == 3309 - 3198

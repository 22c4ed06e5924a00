"""Small generated data sets written in each loader's on-disk layout."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

from tests.bundle_factory import sensor_series


def _write(path: Path, text: str, compress: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        Path(f"{path}.gz").write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def _rows(values: np.ndarray, fmt: str = "%.6f", delimiter: str = ",") -> str:
    buffer = io.StringIO()
    np.savetxt(buffer, values, fmt=fmt, delimiter=delimiter)
    return buffer.getvalue()


def labels_for(steps: int, ranges: list[tuple[int, int]]) -> np.ndarray:
    """Boolean labels with [start, end) ranges set."""
    labels = np.zeros(steps, dtype=bool)
    for start, end in ranges:
        labels[start:end] = True
    return labels


def write_smd(root: Path, machine: str, *, steps: int = 300, compress: bool = True) -> np.ndarray:
    """An SMD machine: train, test, labels (test steps 100-119) and an interpretation line."""
    train = sensor_series(steps, channels=5, seed=1)
    test = sensor_series(steps, channels=5, seed=2, anomaly=(100, 120, 3))
    labels = labels_for(steps, [(100, 120)]).astype(int)
    _write(root / "train" / f"{machine}.txt", _rows(train), compress)
    _write(root / "test" / f"{machine}.txt", _rows(test), compress)
    _write(root / "test_label" / f"{machine}.txt", _rows(labels[:, None], "%d"), compress)
    _write(root / "interpretation_label" / f"{machine}.txt", "100-119:4,5\n", compress)
    return test


def write_telemanom(root: Path, *, compress: bool) -> None:
    """Two MSL channels and one SMAP channel with inclusive anomaly ranges."""
    channels = {
        "M-1": ("MSL", 200, 250, "[[10, 19]]"),
        "C-2": ("MSL", 150, 120, "[[0, 4], [100, 119]]"),
        "A-1": ("SMAP", 80, 90, "[[5, 6]]"),
    }
    lines = ["chan_id,spacecraft,anomaly_sequences,class,num_values"]
    for seed, (channel, (craft, n_train, n_test, ranges)) in enumerate(channels.items()):
        dims = 4 if craft == "MSL" else 3
        for split, n in (("train", n_train), ("test", n_test)):
            buffer = io.BytesIO()
            np.save(buffer, sensor_series(n, channels=dims, seed=seed).astype(np.float64))
            path = root / split / f"{channel}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            raw = buffer.getvalue()
            if compress:
                Path(f"{path}.gz").write_bytes(gzip.compress(raw))
            else:
                path.write_bytes(raw)
        lines.append(f'{channel},{craft},"{ranges}",[point],{n_test}')
    (root / "labeled_anomalies.csv").write_text("\n".join(lines) + "\n")


def write_psm(root: Path) -> None:
    """PSM's three CSV files; train has a gap (empty field) to be filled forward."""
    header = "timestamp_(min)," + ",".join(f"feature_{i}" for i in range(3))
    train = sensor_series(150, channels=3, seed=4)
    test = sensor_series(120, channels=3, seed=5, anomaly=(60, 70, 0))
    root.mkdir(parents=True, exist_ok=True)
    train_lines = [header] + [
        f"{i}," + ",".join(f"{v:.5f}" for v in row) for i, row in enumerate(train)
    ]
    train_lines[11] = "10,," + train_lines[11].split(",", 2)[2]  # step 10, feature_0 missing
    (root / "train.csv").write_text("\n".join(train_lines) + "\n")
    (root / "test.csv").write_text(
        "\n".join(
            [header] + [f"{i}," + ",".join(f"{v:.5f}" for v in row) for i, row in enumerate(test)]
        )
        + "\n"
    )
    labels = labels_for(120, [(60, 70)])
    (root / "test_label.csv").write_text(
        "timestamp_(min),label\n" + "".join(f"{i},{int(v)}\n" for i, v in enumerate(labels))
    )


SKAB_COLUMNS = ["Accelerometer1RMS", "Current", "Pressure"]


def _skab_csv(values: np.ndarray, labels: np.ndarray | None) -> str:
    header = ["datetime", *SKAB_COLUMNS] + (
        ["anomaly", "changepoint"] if labels is not None else []
    )
    lines = [";".join(header)]
    for i, row in enumerate(values):
        fields = [f"2020-03-09 10:{i // 60:02d}:{i % 60:02d}", *(f"{v:.5f}" for v in row)]
        if labels is not None:
            fields += [f"{float(labels[i])}", "0.0"]
        lines.append(";".join(fields))
    return "\r\n".join(lines) + "\r\n"


def write_skab(root: Path) -> None:
    """anomaly-free.csv plus valve1/{0,1}.csv and other/2.csv (';'-separated, CRLF)."""
    data = root / "data"
    (data / "anomaly-free").mkdir(parents=True)
    (data / "anomaly-free" / "anomaly-free.csv").write_text(
        _skab_csv(sensor_series(200, channels=3, seed=6), None)
    )
    for group, name, steps in (("valve1", "0", 90), ("valve1", "1", 70), ("other", "2", 60)):
        (data / group).mkdir(exist_ok=True)
        labels = labels_for(steps, [(30, 40)])
        values = sensor_series(steps, channels=3, seed=steps, anomaly=(30, 40, 1))
        (data / group / f"{name}.csv").write_text(_skab_csv(values, labels))


def write_csv_data(root: Path, *, steps: int = 600, channels: int = 3) -> np.ndarray:
    """train.csv and test.csv (timestamp, channels, label); test anomaly on steps 300-339.
    Returns the test labels."""
    names = [f"sensor_{i}" for i in range(channels)]
    train = sensor_series(steps, channels=channels, seed=21)
    test = sensor_series(steps, channels=channels, seed=22, anomaly=(300, 340, 1))
    labels = labels_for(steps, [(300, 340)])
    root.mkdir(parents=True, exist_ok=True)
    for name, values, marks in (("train", train, np.zeros(steps, bool)), ("test", test, labels)):
        lines = ["timestamp," + ",".join(names) + ",label"]
        lines += [
            f"2024-01-01T00:{i // 60:02d}:{i % 60:02d},"
            + ",".join(f"{v:.5f}" for v in row)
            + f",{int(marks[i])}"
            for i, row in enumerate(values)
        ]
        (root / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return labels

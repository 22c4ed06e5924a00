"""NASA MSL and SMAP telemetry in the telemanom layout: `{train,test}/<chan>.npy` (plain or `.gz`)
and `labeled_anomalies.csv`. As Anomaly Transformer does, one spacecraft's channels are joined end
to end into one series (MSL: 27 channels of 55 dimensions)."""

from __future__ import annotations

import ast
import csv
import gzip
import io
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from training.windows.loaders.text_files import read_text, resolve
from training.windows.series import SensorData, SeriesPart


def _load_array(path: Path) -> NDArray[np.float64]:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    values = np.load(io.BytesIO(raw), allow_pickle=False)
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D array, got shape {array.shape}")
    return array


def _labels(ranges_text: str, n_steps: int, where: str) -> NDArray[np.bool_]:
    try:
        ranges = ast.literal_eval(ranges_text)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"{where}: anomaly_sequences {ranges_text!r} is not a list") from exc
    labels = np.zeros(n_steps, dtype=bool)
    for start, end in ranges:
        if not 0 <= start <= end < n_steps:
            raise ValueError(f"{where}: range [{start}, {end}] is outside 0..{n_steps - 1}")
        labels[start : end + 1] = True  # telemanom's ranges are inclusive
    return labels


def load_telemanom(root: Path, spacecraft: str) -> SensorData:
    root = Path(root)
    table = root / "labeled_anomalies.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table} is missing (the telemanom label file)")
    rows = [
        row
        for row in csv.DictReader(io.StringIO(read_text(table)))
        if row.get("spacecraft") == spacecraft
    ]
    if not rows:
        raise ValueError(f"{table} lists no channel of spacecraft {spacecraft}")
    train_parts, test_parts, test_labels = [], [], []
    for row in rows:
        channel = row["chan_id"]
        train = _load_array(resolve(root / "train", f"{channel}.npy"))
        test = _load_array(resolve(root / "test", f"{channel}.npy"))
        where = f"{table}, channel {channel}"
        if int(row["num_values"]) != test.shape[0]:
            raise ValueError(
                f"{where}: num_values {row['num_values']} but the test file has {test.shape[0]}"
            )
        train_parts.append(train)
        test_parts.append(test)
        test_labels.append(_labels(row["anomaly_sequences"], test.shape[0], where))
    n_channels = train_parts[0].shape[1]
    if any(part.shape[1] != n_channels for part in train_parts + test_parts):
        raise ValueError(f"{spacecraft}: channels have different numbers of dimensions")
    return SensorData(
        name=spacecraft,
        channels=tuple(f"dim_{i}" for i in range(n_channels)),
        train=(SeriesPart(f"{spacecraft} train", np.concatenate(train_parts)),),
        test=(
            SeriesPart(
                f"{spacecraft} test", np.concatenate(test_parts), np.concatenate(test_labels)
            ),
        ),
        source=f"{spacecraft} ({len(rows)} telemanom channels joined) at {root}",
    )

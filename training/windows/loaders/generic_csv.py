"""Users' own data: `train.csv` and `test.csv` (or folders `train/` and `test/` of CSV files, each
one recording). First column a timestamp, then one column per channel; an optional `label` column
(1 = anomalous step) is required in the test files. Training windows that touch a labelled step
are left out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.windows.loaders.text_files import column_numbers, read_table
from training.windows.series import SensorData, SeriesPart, fill_gaps

LABEL_COLUMN = "label"


def _files(root: Path, split: str) -> list[Path]:
    single = root / f"{split}.csv"
    if single.is_file():
        return [single]
    return sorted((root / split).glob("*.csv")) if (root / split).is_dir() else []


def _read_part(
    path: Path, channels: list[str] | None, *, labelled: bool = False
) -> tuple[list[str], SeriesPart]:
    header, body = read_table(path)
    if len(header) < 2:
        raise ValueError(f"{path}: expected a timestamp column and at least one channel")
    label_names = [name for name in header[1:] if name.lower() == LABEL_COLUMN]
    if labelled and not label_names:
        raise ValueError(f"test file {path} has no '{LABEL_COLUMN}' column (1 = anomalous step)")
    names = [name for name in header[1:] if name.lower() != LABEL_COLUMN]
    if channels is not None and names != channels:
        raise ValueError(f"{path}: channels {names} differ from the training channels {channels}")
    values = fill_gaps(column_numbers(path, header, body, names), str(path))
    labels = None
    if label_names:
        raw = column_numbers(path, header, body, label_names)[:, 0]
        if np.isnan(raw).any() or not np.isin(raw, (0.0, 1.0)).all():
            raise ValueError(f"{path}: the {label_names[0]!r} column must hold only 0 and 1")
        labels = raw == 1.0
    return names, SeriesPart(path.name, values, labels)


def load_csv(root: Path) -> SensorData:
    root = Path(root)
    train_files = _files(root, "train")
    if not train_files:
        raise FileNotFoundError(f"no training data: expected {root / 'train.csv'} or {root}/train/")
    channels, first = _read_part(train_files[0], None)
    train = [first] + [_read_part(path, channels)[1] for path in train_files[1:]]
    test = [_read_part(path, channels, labelled=True)[1] for path in _files(root, "test")]
    return SensorData(
        name=root.name,
        channels=tuple(channels),
        train=tuple(train),
        test=tuple(test),
        source=f"CSV files at {root}",
    )

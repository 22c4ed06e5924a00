"""Pooled Server Metrics (eBay, from the RANSynCoders release): `train.csv`, `test.csv` and
`test_label.csv`, each with a leading `timestamp_(min)` column; gaps are filled forward."""

from __future__ import annotations

from pathlib import Path

from training.windows.loaders.text_files import column_numbers, read_table, resolve
from training.windows.series import SensorData, SeriesPart, fill_gaps


def load_psm(root: Path) -> SensorData:
    root = Path(root)
    train_path = resolve(root, "train.csv")
    test_path = resolve(root, "test.csv")
    label_path = resolve(root, "test_label.csv")
    train_header, train_body = read_table(train_path)
    test_header, test_body = read_table(test_path)
    label_header, label_body = read_table(label_path)
    channels = train_header[1:]
    if test_header[1:] != channels:
        raise ValueError(f"{test_path}: its columns differ from {train_path}'s")
    if "label" not in label_header:
        raise ValueError(f"{label_path} has no 'label' column (columns: {label_header})")
    if len(label_body) != len(test_body):
        raise ValueError(f"{label_path}: {len(label_body)} labels for {len(test_body)} test rows")
    train = fill_gaps(column_numbers(train_path, train_header, train_body, channels), "PSM train")
    test = fill_gaps(column_numbers(test_path, test_header, test_body, channels), "PSM test")
    labels = column_numbers(label_path, label_header, label_body, ["label"])[:, 0]
    return SensorData(
        name="PSM",
        channels=tuple(channels),
        train=(SeriesPart("PSM train", train),),
        test=(SeriesPart("PSM test", test, labels != 0),),
        source=f"PSM at {root}",
        step_seconds=60.0,
    )

"""The UCR anomaly archive (Wu and Keogh; KDD 2021 competition): one univariate series per file
`<id>_UCR_Anomaly_<name>_<train_end>_<anomaly_start>_<anomaly_end>.txt`, one value per line. The
steps before train_end are normal training data; the rest is the test part, with one labelled
anomaly [anomaly_start, anomaly_end) in whole-series steps (TranAD's reading of the names)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from training.windows.loaders.text_files import read_numbers
from training.windows.series import SensorData, SeriesPart

_NAME = re.compile(r"^(\d+)_UCR_Anomaly_(.+)_(\d+)_(\d+)_(\d+)$")


def ucr_series(root: Path) -> list[str]:
    """The names of the series in `root` (e.g. 'InternalBleeding16'), in file-number order."""
    found = [_NAME.match(path.stem) for path in Path(root).glob("*_UCR_Anomaly_*.txt")]
    return [m.group(2) for m in sorted((m for m in found if m), key=lambda m: int(m.group(1)))]


def load_ucr(root: Path, series: str | None) -> SensorData:
    """The series named `series` (its name or file number); None when `root` holds only one."""
    matches = [(path, _NAME.match(path.stem)) for path in Path(root).glob("*_UCR_Anomaly_*.txt")]
    named = [(path, m) for path, m in matches if m]
    if series is not None:
        named = [(path, m) for path, m in named if series in (m.group(1), m.group(2))]
    if len(named) != 1:
        known = ", ".join(ucr_series(root)) or "none"
        what = "no" if not named else "more than one"
        raise FileNotFoundError(
            f"{what} UCR series {series or ''} in {root}: name one with --subset (present: {known})"
        )
    path, match = named[0]
    train_end, start, end = (int(match.group(i)) for i in (3, 4, 5))
    values = read_numbers(path)
    if values.shape[1] != 1:
        values = values.reshape(-1, 1)
    n_steps = values.shape[0]
    if not 0 < train_end <= start < end <= n_steps:
        raise ValueError(
            f"{path.name}: expected train end <= anomaly start < anomaly end <= {n_steps} steps"
        )
    labels = np.zeros(n_steps - train_end, dtype=bool)
    labels[start - train_end : end - train_end] = True
    return SensorData(
        name=f"UCR {match.group(2)}",
        channels=("value",),
        train=(SeriesPart("train", values[:train_end]),),
        test=(SeriesPart("test", values[train_end:], labels),),
        source=f"UCR anomaly archive {path.name} at {path.parent}",
    )

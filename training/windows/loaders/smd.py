"""Server Machine Dataset (OmniAnomaly): one series of 38 metrics per machine in
`{train,test,test_label,interpretation_label}/<machine>.txt`, plain or `.gz`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from training.windows.loaders.text_files import read_numbers, read_text, resolve
from training.windows.series import LabelledEvent, SensorData, SeriesPart

_EVENT = re.compile(r"^(\d+)-(\d+):([\d,\s]+)$")


def smd_machines(root: Path) -> list[str]:
    """The machines whose training file is present, e.g. ['machine-1-1', ...]."""
    names = {
        path.name.removesuffix(".gz").removesuffix(".txt")
        for path in (Path(root) / "train").glob("machine-*.txt*")
    }
    return sorted(names, key=lambda name: [int(part) for part in name.split("-")[1:]])


def _interpretations(path: Path, n_channels: int) -> tuple[LabelledEvent, ...]:
    """`start-end:c1,c2,...` lines; SMD's channel numbers count from 1."""
    events = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        match = _EVENT.match(line.strip())
        if match is None:
            raise ValueError(f"{path}, line {number}: expected 'start-end:channels', got {line!r}")
        channels = tuple(int(c) - 1 for c in match.group(3).split(",") if c.strip())
        if any(not 0 <= c < n_channels for c in channels):
            raise ValueError(f"{path}, line {number}: channel out of 1..{n_channels}")
        events.append(LabelledEvent(int(match.group(1)), int(match.group(2)), channels))
    return tuple(events)


def load_smd(root: Path, machine: str) -> SensorData:
    root = Path(root)
    name = f"{machine}.txt"
    try:
        train = read_numbers(resolve(root / "train", name))
    except FileNotFoundError:
        known = ", ".join(smd_machines(root)) or "none"
        raise FileNotFoundError(
            f"SMD machine {machine!r} not found under {root / 'train'} (present: {known})"
        ) from None
    test = read_numbers(resolve(root / "test", name))
    labels = read_numbers(resolve(root / "test_label", name)).ravel()
    if labels.shape[0] != test.shape[0]:
        raise ValueError(
            f"SMD {machine}: {labels.shape[0]} test labels for {test.shape[0]} test rows"
        )
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"SMD {machine}: train has {train.shape[1]} columns, test {test.shape[1]}")
    n_channels = train.shape[1]
    try:
        interpretations = _interpretations(resolve(root / "interpretation_label", name), n_channels)
    except FileNotFoundError:
        interpretations = ()
    return SensorData(
        name=f"SMD {machine}",
        channels=tuple(f"metric_{i + 1}" for i in range(n_channels)),
        train=(SeriesPart(f"{machine} train", train),),
        test=(SeriesPart(f"{machine} test", test, labels.astype(np.int64) != 0),),
        source=f"SMD {machine} at {root}",
        interpretations=interpretations,
        step_seconds=60.0,
    )

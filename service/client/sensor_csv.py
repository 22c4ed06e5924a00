"""Sensor series from a CSV file in the layout `auscult train windows --format csv` reads
(docs/TRAINING.md): a header row, a timestamp first, then one column per channel, and an optional
`label` column, which is not sent; comma-, semicolon- or tab-separated, as the header shows. The
header's names go with the rows, so the columns may be in any order. An empty cell repeats the
channel's previous reading, as training fills it (training/windows/series.py: the service may
not import training)."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LABEL_COLUMN = "label"


class SensorFileError(ValueError):
    """The file is not a sensor CSV file; the message says where and why."""


@dataclass(frozen=True)
class SensorFile:
    """A CSV file's channel names; `rows()` reads its readings one row at a time, so a long
    recording is streamed without being held in memory."""

    path: Path
    channels: list[str]
    _keep: list[int]  # the columns holding channels
    _delimiter: str

    def rows(self) -> Iterator[list[float]]:
        previous: list[float] | None = None
        with self.path.open(newline="", encoding="utf-8") as file:
            reader = csv.reader(file, delimiter=self._delimiter)
            next(reader)  # the header
            for row in reader:
                if not row:
                    continue
                if len(row) <= self._keep[-1]:
                    raise SensorFileError(
                        f"{self.path}, line {reader.line_num}: {len(row)} columns, expected "
                        f"{self._keep[-1] + 1}"
                    )
                previous = [
                    self._number(row[i], previous[n] if previous else None, reader.line_num)
                    for n, i in enumerate(self._keep)
                ]
                yield previous

    def _number(self, text: str, previous: float | None, line: int) -> float:
        if not text.strip():
            if previous is None:
                raise SensorFileError(
                    f"{self.path}, line {line}: an empty cell before any reading of its channel"
                )
            return previous
        try:
            return float(text)
        except ValueError:
            raise SensorFileError(f"{self.path}, line {line}: {text!r} is not a number") from None


def sensor_file(path: str | os.PathLike[str]) -> SensorFile:
    """The channels of a sensor CSV file, checked from its header."""
    location = Path(path)
    with location.open(newline="", encoding="utf-8") as file:
        first_line = file.readline()
    delimiter = max(",;\t", key=first_line.count)
    header = next(csv.reader([first_line], delimiter=delimiter), None)
    if header is None or len(header) < 2:
        raise SensorFileError(
            f"{location}: expected a header with a timestamp column and at least one channel"
        )
    keep = [i for i, name in enumerate(header) if i > 0 and name.lower() != LABEL_COLUMN]
    if not keep:
        raise SensorFileError(f"{location}: no channel columns after the timestamp")
    return SensorFile(location, [header[i].strip() for i in keep], keep, delimiter)

"""Reading the data sets' files: plain or gzip-compressed, numeric tables with or without header."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np
from numpy.typing import NDArray


def resolve(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/name.gz` where only the compressed file exists."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"neither {folder / name} nor {folder / name}.gz exists")


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8-sig")


def read_numbers(path: Path, delimiter: str = ",") -> NDArray[np.float64]:
    """A header-less numeric table as [rows, columns] float64."""
    values = np.loadtxt(io.StringIO(read_text(path)), delimiter=delimiter, ndmin=2)
    return np.asarray(values, dtype=np.float64)


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """A delimited text table with a header row (',', ';' or tab, sniffed from the header)."""
    text = read_text(path)
    lines = text.splitlines()
    if not lines:
        raise ValueError(f"{path} is empty")
    header_line = lines[0]
    delimiter = max(",;\t", key=header_line.count)
    rows = list(csv.reader(lines, delimiter=delimiter))
    header = [name.strip() for name in rows[0]]
    body = [row for row in rows[1:] if row]
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(
                f"{path}, line {number}: {len(row)} fields, the header has {len(header)}"
            )
    return header, body


def column_numbers(
    path: Path, header: list[str], body: list[list[str]], names: list[str]
) -> NDArray[np.float64]:
    """The named columns as floats [rows, len(names)]; empty fields become NaN."""
    index = [header.index(name) for name in names]
    values = np.empty((len(body), len(names)), dtype=np.float64)
    for row_number, row in enumerate(body):
        for column, field in enumerate(index):
            text = row[field].strip()
            try:
                values[row_number, column] = float(text) if text else np.nan
            except ValueError:
                raise ValueError(
                    f"{path}, line {row_number + 2}, column {header[field]!r}: "
                    f"{text!r} is not a number"
                ) from None
    return values

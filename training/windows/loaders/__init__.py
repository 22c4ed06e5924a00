"""Sensor data set loaders; `load_data` picks one by format name."""

from __future__ import annotations

from pathlib import Path

from training.windows.loaders.generic_csv import load_csv
from training.windows.loaders.psm import load_psm
from training.windows.loaders.skab import load_skab
from training.windows.loaders.smd import load_smd
from training.windows.loaders.telemanom import load_telemanom
from training.windows.loaders.ucr import load_ucr
from training.windows.series import SensorData

FORMATS = ("smd", "msl", "smap", "psm", "skab", "ucr", "csv")


def load_data(data_format: str, root: Path, subset: str | None = None) -> SensorData:
    """Load `root` in `data_format`. `subset` names the SMD machine (required for SMD), the SKAB
    experiment group, the UCR series (name or file number), or is unused."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    if data_format == "smd":
        if subset is None:
            raise ValueError("SMD holds one series per machine: name one, e.g. machine-1-1")
        return load_smd(root, subset)
    if data_format in ("msl", "smap"):
        return load_telemanom(root, data_format.upper())
    if data_format == "psm":
        return load_psm(root)
    if data_format == "skab":
        return load_skab(root, groups=None if subset is None else (subset,))
    if data_format == "ucr":
        return load_ucr(root, subset)
    if data_format == "csv":
        return load_csv(root)
    raise ValueError(f"unknown data format {data_format!r}; choose one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "load_data"]

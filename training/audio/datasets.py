"""Find the labelled recordings of a data folder: the DCASE 2020 Task 2 layout or a folder layout
(`normal/` plus one folder per anomaly class), recognised from the folder itself."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Layout = Literal["dcase", "folders"]
Label = Literal["normal", "anomaly"]
Partition = Literal["train", "test"]

AUDIO_SUFFIXES = frozenset({".wav", ".flac"})
DCASE_PARTITIONS: tuple[Partition, ...] = ("train", "test")
NORMAL_FOLDER = "normal"
_DCASE_NAME = re.compile(r"^(normal|anomaly)_(id_\d+)_(\d+)$")


class DatasetError(ValueError):
    """A data folder cannot be read as a labelled machine-sound data set; says why."""


@dataclass(frozen=True)
class Recording:
    """One audio file. `recording_id` is its path inside the data set without the suffix, stable
    wherever the data set is moved; `group` is the machine ID (DCASE) or the class folder."""

    path: Path
    recording_id: str
    label: Label
    group: str
    # DCASE's own train/test partition; None where the layout has none.
    partition: Partition | None = None

    @property
    def is_anomaly(self) -> bool:
        return self.label == "anomaly"


@dataclass(frozen=True)
class Dataset:
    """The recordings of one machine type; `root` is the folder they are listed from."""

    root: Path
    layout: Layout
    machine_type: str
    recordings: tuple[Recording, ...]

    @property
    def normal(self) -> tuple[Recording, ...]:
        return tuple(r for r in self.recordings if not r.is_anomaly)

    @property
    def anomalous(self) -> tuple[Recording, ...]:
        return tuple(r for r in self.recordings if r.is_anomaly)

    def describe(self) -> str:
        groups = sorted({r.group for r in self.recordings})
        kind = "machine IDs" if self.layout == "dcase" else "classes"
        return (
            f"{self.machine_type} ({self.layout} layout at {self.root}: {len(self.normal)} normal "
            f"and {len(self.anomalous)} anomalous recordings; {kind} {', '.join(groups)})"
        )


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _is_dcase_machine_folder(folder: Path) -> bool:
    return any(
        (folder / part).is_dir() and _audio_files(folder / part) for part in DCASE_PARTITIONS
    )


def _dcase_recordings(folder: Path) -> tuple[Recording, ...]:
    recordings = []
    for partition in DCASE_PARTITIONS:
        part = folder / partition
        if not part.is_dir():
            continue
        for path in _audio_files(part):
            match = _DCASE_NAME.match(path.stem)
            if match is None:
                raise DatasetError(
                    f"{path}: DCASE file names must look like normal_id_00_00000000.wav or "
                    "anomaly_id_00_00000000.wav, so that the label and machine ID are known"
                )
            label: Label = "normal" if match.group(1) == "normal" else "anomaly"
            recordings.append(
                Recording(
                    path=path,
                    recording_id=f"{partition}/{path.stem}",
                    label=label,
                    group=match.group(2),
                    partition=partition,
                )
            )
    return tuple(recordings)


def _class_folders(folder: Path) -> list[Path]:
    """Direct subfolders holding audio files; others (e.g. MIMII's `multichannel/`) are not
    classes."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and _audio_files(p))


def _folder_recordings(folder: Path) -> tuple[Recording, ...]:
    recordings = []
    for class_folder in _class_folders(folder):
        label: Label = "normal" if class_folder.name == NORMAL_FOLDER else "anomaly"
        for path in _audio_files(class_folder):
            recordings.append(
                Recording(
                    path=path,
                    recording_id=f"{class_folder.name}/{path.stem}",
                    label=label,
                    group=class_folder.name,
                )
            )
    return tuple(recordings)


def _dataset(root: Path, layout: Layout, machine_type: str) -> Dataset:
    recordings = _dcase_recordings(root) if layout == "dcase" else _folder_recordings(root)
    if not recordings:
        raise DatasetError(f"{root} holds no .wav or .flac recordings")
    dataset = Dataset(root=root, layout=layout, machine_type=machine_type, recordings=recordings)
    if not dataset.normal:
        raise DatasetError(
            f"{root} holds no normal recordings: the autoencoder learns what normal sounds like"
        )
    return dataset


def open_dataset(
    path: Path, machine_type: str | None = None, *, preferred_machine_type: str | None = None
) -> Dataset:
    """Recognise the layout of `path` and list its recordings.

    `path` may be a DCASE machine-type folder (`train/`, `test/`), a DCASE root holding several
    (pick one with `machine_type` when there are more; `preferred_machine_type` picks one only
    from a root), or a folder with `normal/` and one folder per anomaly class. For a folder
    layout `machine_type` just names the machine (default: the folder's name)."""
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"data path {root} is not a folder")
    if _is_dcase_machine_folder(root):
        if machine_type is not None and machine_type != root.name:
            raise DatasetError(
                f"{root} is the DCASE folder of machine type {root.name!r}, not {machine_type!r}"
            )
        return _dataset(root, "dcase", root.name)
    if (root / NORMAL_FOLDER).is_dir() and _audio_files(root / NORMAL_FOLDER):
        return _dataset(root, "folders", machine_type or root.name)
    machine_folders = sorted(
        p for p in root.iterdir() if p.is_dir() and _is_dcase_machine_folder(p)
    )
    if machine_folders:
        names = [p.name for p in machine_folders]
        if machine_type is None and preferred_machine_type in names:
            machine_type = preferred_machine_type
        if machine_type is None:
            if len(machine_folders) > 1:
                raise DatasetError(
                    f"{root} is a DCASE root with machine types {', '.join(names)}; "
                    "choose one with --machine-type"
                )
            return _dataset(machine_folders[0], "dcase", names[0])
        if machine_type not in names:
            raise DatasetError(
                f"{root} has no DCASE machine type {machine_type!r} (it has {', '.join(names)})"
            )
        return _dataset(root / machine_type, "dcase", machine_type)
    if not any(root.iterdir()):
        raise DatasetError(f"data folder {root} is empty")
    raise DatasetError(
        f"cannot recognise the layout of {root}: expected a DCASE machine-type folder "
        "(train/ or test/ with normal_id_XX_N.wav and anomaly_id_XX_N.wav), a DCASE root of "
        "such folders, or a folder with normal/ and one folder per anomaly class holding "
        ".wav or .flac files"
    )

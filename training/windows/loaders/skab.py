"""Skoltech Anomaly Benchmark: `data/anomaly-free/anomaly-free.csv` (normal operation, the training
data) and experiments `data/<group>/<n>.csv` (';'-separated, `anomaly` and `changepoint` columns),
each experiment a separate test part."""

from __future__ import annotations

from pathlib import Path

from training.windows.loaders.text_files import column_numbers, read_table
from training.windows.series import SensorData, SeriesPart, fill_gaps

SKAB_GROUPS = ("valve1", "valve2", "other")
_NOT_CHANNELS = {"datetime", "anomaly", "changepoint"}


def _experiment_files(data: Path, group: str) -> list[Path]:
    files = list((data / group).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no SKAB experiments in {data / group}")
    return sorted(files, key=lambda path: int(path.stem) if path.stem.isdigit() else path.stem)


def load_skab(root: Path, groups: tuple[str, ...] | None = None) -> SensorData:
    root = Path(root)
    data = root / "data" if (root / "data").is_dir() else root
    normal_path = data / "anomaly-free" / "anomaly-free.csv"
    if not normal_path.is_file():
        raise FileNotFoundError(f"{normal_path} is missing (SKAB's normal-operation file)")
    header, body = read_table(normal_path)
    channels = [name for name in header if name not in _NOT_CHANNELS]
    train = fill_gaps(column_numbers(normal_path, header, body, channels), str(normal_path))
    chosen = groups or tuple(g for g in SKAB_GROUPS if (data / g).is_dir())
    if not chosen:
        raise FileNotFoundError(f"no SKAB experiment folder ({', '.join(SKAB_GROUPS)}) in {data}")
    test_parts = []
    for group in chosen:
        for path in _experiment_files(data, group):
            part_header, part_body = read_table(path)
            missing = [name for name in [*channels, "anomaly"] if name not in part_header]
            if missing:
                raise ValueError(f"{path} lacks column(s) {missing}")
            values = fill_gaps(column_numbers(path, part_header, part_body, channels), str(path))
            labels = column_numbers(path, part_header, part_body, ["anomaly"])[:, 0] != 0
            test_parts.append(SeriesPart(f"{group}/{path.name}", values, labels))
    return SensorData(
        name="SKAB" if groups is None else f"SKAB {'+'.join(chosen)}",
        channels=tuple(channels),
        train=(SeriesPart("anomaly-free", train),),
        test=tuple(test_parts),
        source=f"SKAB ({', '.join(chosen)}) at {data}",
        step_seconds=1.0,
    )

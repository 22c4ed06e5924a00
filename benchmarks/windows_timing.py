"""Training time of every windows model, one after another on an otherwise idle machine: MSL
(all channels joined) and one SMD machine, seed 0, the default configuration, 1 and 2 torch
threads. Wall and process CPU seconds; the distilled student's include its teacher's. Writes
benchmarks/results/windows_timing.json."""

from __future__ import annotations

import json
import os
import platform

import torch

from benchmarks.windows_grid import DATA_DIR, LABELS, RESULTS
from training.windows.config import TRAINED_KINDS, WindowsConfig
from training.windows.loaders import load_data
from training.windows.pipeline import prepare, train_models

OUT = RESULTS / "windows_timing.json"
SERIES = (("MSL", "msl", "MSL", None), ("SMD machine-1-2", "smd", "SMD", "machine-1-2"))


def main() -> None:
    config = WindowsConfig(score_pooling="step")
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, data_format, folder, subset in SERIES:
            data = load_data(data_format, DATA_DIR / "timeseries" / folder, subset)
            prepared = prepare(data, config)
            load = os.getloadavg()[0]
            trained = train_models(prepared, config, TRAINED_KINDS, seed=0)
            teacher = trained["teacher"]
            for kind, model in trained.items():
                with_teacher = kind == "distilled_student"
                row = {
                    "series": name,
                    "model": LABELS[kind],
                    "threads": threads,
                    "wall_seconds": model.seconds + (teacher.seconds if with_teacher else 0.0),
                    "cpu_seconds": model.cpu_seconds
                    + (teacher.cpu_seconds if with_teacher else 0.0),
                    "epochs_run": model.report.epochs_run,
                    "train_windows": int(prepared.train_windows.shape[0]),
                    "load_average_at_start": load,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "runs": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

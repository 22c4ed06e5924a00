"""Screen of the combined sensor detectors against their members, in numpy (no bundles): on MSL
and each SMD machine (others with `--series`), PCA reconstruction and kNN (k = 5) are fitted as
`auscult train windows` fits them, their per-step scores (step and window pooling) taken on the
held-out training blocks and the test parts exactly as the service reassembles them, and the
candidates formed from them:

- `ens_window`, `ens_step`, `ens_mixed`: the mean of PCA's and kNN's scores, each standardised
  by the median and inter-quartile range of its own scores on the held-out normal training
  windows (both window-pooled, both step-pooled; PCA window with kNN step);
- `ens_mixed_reversed` (PCA step with kNN window), `pca_mixed` and `knn_mixed` (one model's
  window and step scores): whether `ens_mixed` gains from mixing models or poolings;
- `ens_window_u`, `ens_step_u`: as `ens_window`, `ens_step` with the statistics of the unpooled
  per-step scores (the same for either pooling);
- `ens_window_z`: as `ens_window` with mean and standard deviation instead (a sensitivity check);
- `knn_whitened`: kNN distance (mean squared, 5 nearest) between windows projected on PCA's
  components and divided by each component's standard deviation, window-pooled.

Reassembly (the mean over the windows covering a step) is linear, so a combined score formed
here equals that of a graph computing it per window. Appends one JSON line per series to
benchmarks/results/windows_ensemble_screen.jsonl (series already there are skipped); `--report`
writes the table of benchmarks/results/windows_ensemble_screen.md from it.

    nice -n 10 python -m benchmarks.windows_ensemble_screen [--series MSL ...]
    python -m benchmarks.windows_ensemble_screen --report
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from benchmarks.windows_baselines import all_series
from benchmarks.windows_grid import RESULTS
from service.features.windows import reassemble, sliding_windows, window_starts
from training.windows.config import WindowsConfig
from training.windows.evaluation import score_parts
from training.windows.metrics import vus_pr
from training.windows.models.pca import fit_pca
from training.windows.pipeline import prepare, train_models
from training.windows.scoring import score_windows, scores_for

RAW = RESULTS / "windows_ensemble_screen.jsonl"
TABLE = RESULTS / "windows_ensemble_screen.md"


def _robust(values: NDArray[np.floating]) -> tuple[float, float]:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float(median), float(max(q3 - q1, 1e-12))


def _moments(values: NDArray[np.floating]) -> tuple[float, float]:
    return float(np.mean(values)), float(max(np.std(values), 1e-12))


def _whitened_knn(
    train: NDArray[np.float32], series_windows: NDArray[np.float32], explained: float, k: int
) -> NDArray[np.float64]:
    """Per-window mean squared whitened distance to the k nearest training windows."""
    pca = fit_pca(train, explained)
    mean = pca.mean.numpy().astype(np.float64)
    components = pca.components.numpy().astype(np.float64)
    centred = train.reshape(train.shape[0], -1) - mean
    projected = centred @ components.T
    scale = projected.std(axis=0) + 1e-12
    bank = projected / scale
    query = ((series_windows.reshape(series_windows.shape[0], -1) - mean) @ components.T) / scale
    distances = (
        (query**2).sum(1)[:, None] - 2.0 * query @ bank.T + (bank**2).sum(1)[None, :]
    ).clip(min=0.0)
    nearest: NDArray[np.float64] = np.sort(distances, axis=1)[:, :k].mean(axis=1)
    return nearest


def screen(name: str, series: Any) -> dict[str, Any]:
    data = series.load()
    config = WindowsConfig()
    prepared = prepare(data, config)
    load_before = os.getloadavg()
    trained = train_models(prepared, config, ["pca", "knn"], seed=0)
    labels = data.test_labels
    members: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    for kind in ("pca", "knn"):
        for pooling in ("step", "window"):
            scoring = scores_for(trained[kind].model, pooling)
            held_out = score_windows(scoring, prepared.validation_windows)[0].ravel()
            test = np.concatenate(
                [s for s, _ in score_parts(scoring, data.test, prepared.stats, config)]
            )
            members[f"{kind}_{pooling}"] = (held_out.astype(np.float64), test)
        # The unpooled per-step scores' statistics, the same for either pooling.
        step_scoring = scores_for(trained[kind].model, "step")
        unpooled = score_windows(step_scoring, prepared.validation_windows)[0].ravel()
        for pooling in ("step", "window"):
            members[f"{kind}_{pooling}_u"] = (
                unpooled.astype(np.float64),
                members[f"{kind}_{pooling}"][1],
            )

    def combined(a: str, b: str, stats: Any) -> NDArray[np.float64]:
        total = np.zeros_like(labels, dtype=np.float64)
        for member in (a, b):
            held_out, test = members[member]
            location, scale = stats(held_out)
            total += (test - location) / scale
        return total / 2.0

    candidates = {name: test for name, (_, test) in members.items() if not name.endswith("_u")}
    candidates["ens_window"] = combined("pca_window", "knn_window", _robust)
    candidates["ens_step"] = combined("pca_step", "knn_step", _robust)
    candidates["ens_mixed"] = combined("pca_window", "knn_step", _robust)
    # Does the mixed candidate's gain come from mixing the poolings rather than the models?
    candidates["ens_mixed_reversed"] = combined("pca_step", "knn_window", _robust)
    candidates["pca_mixed"] = combined("pca_window", "pca_step", _robust)
    candidates["knn_mixed"] = combined("knn_window", "knn_step", _robust)
    candidates["ens_window_u"] = combined("pca_window_u", "knn_window_u", _robust)
    candidates["ens_step_u"] = combined("pca_step_u", "knn_step_u", _robust)
    candidates["ens_window_z"] = combined("pca_window", "knn_window", _moments)
    # kNN on whitened windows, scored window by window and reassembled as the service does.
    mean, std = [c.mean for c in prepared.stats], [c.std for c in prepared.stats]
    parts = []
    for part in data.test:
        values = ((part.values - np.asarray(mean)) / np.asarray(std)).astype(np.float32)
        starts = window_starts(values.shape[0], config.window, config.stride)
        windows = sliding_windows(values, starts, config.window)
        per_window = _whitened_knn(
            prepared.train_windows, windows, config.pca_explained, config.knn_k
        )
        score = np.repeat(per_window[:, None], config.window, axis=1)
        parts.append(reassemble(score, starts, values.shape[0]))
    candidates["knn_whitened"] = np.concatenate(parts)
    return {
        "series": name,
        "vus_pr": {key: vus_pr(value, labels, config.window) for key, value in candidates.items()},
        "n_steps": int(labels.shape[0]),
        "train_windows": int(prepared.train_windows.shape[0]),
        "held_out_windows": int(prepared.validation_windows.shape[0]),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def report() -> str:
    """VUS-PR on MSL, the SMD mean, SKAB and the UCR mean (where screened) of every member and
    candidate, and on how many SMD machines each is above PCA with window scores."""
    rows = [json.loads(line) for line in RAW.read_text().splitlines() if line.strip()]
    groups = {
        name: [r for r in rows if r["series"].split(" ")[0] == name]
        for name in ("MSL", "SMD", "SKAB", "UCR")
    }
    shown = {name: group for name, group in groups.items() if group}
    loads = [v for r in rows for v in (*r["load_average_before"], *r["load_average_after"])]
    header = " | ".join(f"{n} (mean of {len(g)})" if len(g) > 1 else n for n, g in shown.items())
    lines = [
        f"| score | {header} | SMD machines above PCA window |",
        "|---|" + "---|" * (len(shown) + 1),
    ]
    for key in rows[0]["vus_pr"]:
        means = [float(np.mean([r["vus_pr"][key] for r in g])) for g in shown.values()]
        above = sum(r["vus_pr"][key] > r["vus_pr"]["pca_window"] for r in groups["SMD"])
        lines.append(f"| {key} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {above} |")
    steps = ", ".join(f"{n} {sum(r['n_steps'] for r in g)}" for n, g in shown.items())
    lines += [
        "",
        f"VUS-PR, seed 0 (PCA and kNN are deterministic here); test steps: {steps}; 1-minute "
        f"load average {min(loads):.1f} to {max(loads):.1f}. Command: `nice -n 10 python -m "
        "benchmarks.windows_ensemble_screen` (MSL and SMD; SKAB and UCR with `--series`).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--series", nargs="+", help="only these series")
    parser.add_argument("--report", action="store_true", help="only write the table")
    args = parser.parse_args()
    if args.report:
        TABLE.write_text(report())
        print(TABLE.read_text())
        return
    torch.set_num_threads(1)
    done = set()
    if RAW.exists():
        done = {json.loads(line)["series"] for line in RAW.read_text().splitlines() if line}
    for series in all_series():
        if args.series and series.name not in args.series:
            continue
        if not args.series and not (series.name == "MSL" or series.name.startswith("SMD")):
            continue
        if series.name in done:
            continue
        started = time.perf_counter()
        row = screen(series.name, series)
        with RAW.open("a") as out:
            out.write(json.dumps(row) + "\n")
        figures = ", ".join(f"{k} {v:.3f}" for k, v in row["vus_pr"].items())
        print(f"{series.name}: {figures} ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

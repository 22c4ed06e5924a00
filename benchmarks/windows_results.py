"""The sensor tables of docs/RESULTS.md from benchmarks/results/windows_baselines.json (written by
`python -m benchmarks.windows_baselines`): models x data sets by VUS-PR and AUC-PR, the event
figures at the default operating point, and the costs. Every cell is the mean ± sd over seeds;
SMD and UCR are first averaged over their series for each seed. The best row of each column is
in bold.

    python -m benchmarks.windows_results          # prints the tables, writes windows_baselines.md
    python -m benchmarks.windows_results --docs   # and fills docs/RESULTS.md's sensor tables
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.windows_grid import RESULTS
from training.windows.config import WindowsConfig

COLLECTED = RESULTS / "windows_baselines.json"
TABLES = RESULTS / "windows_baselines.md"
DOCS = RESULTS.parents[1] / "docs" / "RESULTS.md"
GROUPS = ("MSL", "SMD", "SKAB", "UCR")
LABELS = {
    "pca": "PCA reconstruction",
    "kmeans": "KMeansAD",
    "knn": "kNN (k = 5)",
    "pca_knn": "PCA + kNN",
    "distilled_student": "distilled student",
    "student": "student (no distillation)",
    "teacher": "teacher",
    "lstm_ae": "LSTM AE",
    "anomaly_transformer": "Anomaly Transformer",
}

Row = dict[str, Any]
Key = tuple[str, str]  # (model, pooling)


def group_of(series: str) -> str:
    return series.split(" ")[0]


def _rank(model: str) -> int:
    return list(LABELS).index(model) if model in LABELS else len(LABELS)


def _keys(rows: list[Row]) -> list[Key]:
    """(model, pooling) pairs in LABELS' order."""
    return sorted({(r["model"], r["pooling"]) for r in rows}, key=lambda k: (_rank(k[0]), k[1]))


def _label(key: Key) -> str:
    model, pooling = key
    if key == ("pca_knn", "step"):
        # Its members are pooled their own way and the step score leaves them so.
        return "PCA + kNN (PCA window + kNN step score, each / its held-out IQR)"
    return f"{LABELS.get(model, model)}, {pooling} score"


def per_seed(rows: list[Row], group: str, value: Callable[[Row], float | None]) -> dict[Key, Any]:
    """For each (model, pooling): the group's value per seed (the mean over its series) and the
    number of series behind it."""
    values: dict[tuple[Key, int], list[float]] = defaultdict(list)
    for row in rows:
        figure = value(row)
        if group_of(row["series"]) == group and figure is not None:
            values[((row["model"], row["pooling"]), row["seed"])].append(figure)
    out: dict[Key, Any] = {}
    for key in {key for key, _ in values}:
        by_seed = [figures for (k, _), figures in sorted(values.items()) if k == key]
        # A seed still running covers fewer series; it would skew the mean, so it waits.
        complete = [f for f in by_seed if len(f) == max(len(g) for g in by_seed)]
        out[key] = {
            "seeds": [float(np.mean(f)) for f in complete],
            "series": len(complete[0]),
        }
    return out


def _cell(seeds: list[float], digits: int = 3, bold: bool = False) -> str:
    if not seeds:
        return "-"
    text = f"{np.mean(seeds):.{digits}f}"
    if len(seeds) > 1:
        text += f" ± {np.std(seeds, ddof=1):.{digits}f}"
    return f"**{text}**" if bold else text


def ranking_table(rows: list[Row], metric: str) -> list[str]:
    keys = _keys(rows)
    columns = {g: per_seed(rows, g, lambda r: r.get(metric)) for g in GROUPS}
    series = {g: max((c["series"] for c in columns[g].values()), default=0) for g in GROUPS}
    best = {
        g: max(
            (float(np.mean(c["seeds"])) for c in columns[g].values() if c["seeds"]), default=None
        )
        for g in GROUPS
    }
    header = " | ".join(f"{g} ({series[g]} series)" if series[g] > 1 else g for g in GROUPS)
    lines = [
        f"| model | {header} | seeds ({'/'.join(GROUPS)}) |",
        "|---|" + "---|" * (len(GROUPS) + 1),
    ]
    for key in keys:
        cells = []
        for g in GROUPS:
            cell = columns[g].get(key)
            if cell is None or not cell["seeds"]:
                cells.append("-")
                continue
            text = _cell(cell["seeds"], bold=float(np.mean(cell["seeds"])) == best[g])
            if cell["series"] < series[g]:
                text += f" ({cell['series']} of {series[g]})"
            cells.append(text)
        n_seeds = "/".join(
            str(len(columns[g][key]["seeds"])) if key in columns[g] else "0" for g in GROUPS
        )
        lines.append(f"| {_label(key)} | " + " | ".join(cells) + f" | {n_seeds} |")
    return lines


def paired_table(rows: list[Row], default: Key) -> list[str]:
    """Each model's VUS-PR minus the default's on the same series (each side averaged over its
    seeds first), so that a model measured on part of a group is compared fairly."""
    means: dict[tuple[Key, str], list[float]] = defaultdict(list)
    for row in rows:
        means[((row["model"], row["pooling"]), row["series"])].append(row["vus_pr"])
    lines = [
        f"| model | {' | '.join(GROUPS)} |",
        "|---|" + "---|" * len(GROUPS),
    ]
    for key in _keys(rows):
        if key == default:
            continue
        cells = []
        for g in GROUPS:
            series = sorted(
                name
                for (k, name) in means
                if k == key and group_of(name) == g and (default, name) in means
            )
            if not series:
                cells.append("-")
                continue
            diffs = [
                float(np.mean(means[(key, name)]) - np.mean(means[(default, name)]))
                for name in series
            ]
            wins = sum(d > 0 for d in diffs)
            cells.append(f"{np.mean(diffs):+.3f} (higher on {wins} of {len(diffs)})")
        lines.append(f"| {_label(key)} | " + " | ".join(cells) + " |")
    return lines


def events_table(rows: list[Row]) -> list[str]:
    """False alarms per 1,440 normal test steps and the share of labelled segments alarmed at
    the default operating point (one alarm per 1,440 held-out normal steps)."""
    keys = _keys(rows)
    lines = [
        "| model | "
        + " | ".join(f"{g}: FA / 1,440 | {g}: segments alarmed" for g in GROUPS)
        + " |",
        "|---|" + "---|---|" * len(GROUPS),
    ]
    alarms = {g: per_seed(rows, g, lambda r: r.get("false_alarms_per_1440_steps")) for g in GROUPS}
    segments = {g: per_seed(rows, g, lambda r: r.get("segments_alarmed")) for g in GROUPS}
    for key in keys:
        cells = []
        for g in GROUPS:
            cells.append(_cell(alarms[g][key]["seeds"], 2) if key in alarms[g] else "-")
            cells.append(_cell(segments[g][key]["seeds"], 2) if key in segments[g] else "-")
        lines.append(f"| {_label(key)} | " + " | ".join(cells) + " |")
    return lines


def cost_table(rows: list[Row]) -> list[str]:
    """Training and scoring cost on MSL and the SMD mean (scoring does not depend on the
    pooling), wall and CPU, the scoring CPU relative to PCA's in the same run, and the MSL bundle
    size."""
    keys = sorted({r["model"] for r in rows}, key=_rank)
    lines = [
        "| model | MSL: train wall / CPU s | MSL: scoring wall / CPU ms per 1,000 steps "
        "(CPU x PCA's) | MSL bundle MB | SMD: train wall / CPU s | SMD: scoring wall / CPU ms "
        "per 1,000 steps (CPU x PCA's) |",
        "|---|---|---|---|---|---|",
    ]

    def mean(model: str, group: str, name: str) -> float | None:
        chosen = [r[name] for r in rows if r["model"] == model and group_of(r["series"]) == group]
        return float(np.mean(chosen)) if chosen else None

    for model in keys:
        cells = []
        for g in ("MSL", "SMD"):
            wall, cpu = mean(model, g, "train_wall_seconds"), mean(model, g, "train_cpu_seconds")
            score_wall = mean(model, g, "score_wall_ms_per_1000_steps")
            score_cpu = mean(model, g, "score_cpu_ms_per_1000_steps")
            pca = mean("pca", g, "score_cpu_ms_per_1000_steps")
            if wall is None or cpu is None or score_wall is None or score_cpu is None:
                cells += ["-", "-"] + (["-"] if g == "MSL" else [])
                continue
            ratio = f" ({score_cpu / pca:.1f} x)" if pca else ""
            cells += [f"{wall:.1f} / {cpu:.1f}", f"{score_wall:.1f} / {score_cpu:.1f}{ratio}"]
            if g == "MSL":
                cells.append(f"{(mean(model, g, 'bundle_bytes') or 0.0) / 1e6:.2f}")
        lines.append(f"| {LABELS.get(model, model)} | " + " | ".join(cells) + " |")
    return lines


def _load_line(document: dict[str, Any]) -> str:
    rows: list[Row] = document["runs"]
    loads = [v for r in rows for v in (r["load_average_before"][0], r["load_average_after"][0])]
    return (
        f"{len(rows)} runs (series x model x score pooling x seed); {document['machine']}; "
        f"1-minute load average of the shared machine during the runs {min(loads):.1f} to "
        f"{max(loads):.1f}."
    )


def overview(document: dict[str, Any]) -> str:
    """docs/RESULTS.md's opening sensor table."""
    return "\n".join([*ranking_table(document["runs"], "vus_pr"), "", _load_line(document)])


def details(document: dict[str, Any]) -> str:
    """docs/RESULTS.md's sensor tables beyond the opening one."""
    rows: list[Row] = document["runs"]
    config = WindowsConfig()
    default = (config.model, config.pooling_for(config.model))
    return "\n".join(
        [
            f"VUS-PR minus the default's ({_label(default)}) on the same series, averaged over "
            "the series, and on how many series it is higher:",
            "",
            *paired_table(rows, default),
            "",
            "AUC-PR (mean ± sd over seeds):",
            "",
            *ranking_table(rows, "auc_pr"),
            "",
            "At the default operating point: false alarms (alarm events touching no labelled "
            "step) per 1,440 normal test steps, and the share of labelled segments alarmed:",
            "",
            *events_table(rows),
            "",
            "Costs: training wall / CPU seconds (the distilled student's include its teacher's) "
            "and scoring through the bundle as served, ms per 1,000 test steps, wall / CPU (1 "
            "ONNX Runtime thread); means over runs. Wall times on the loaded machine are "
            "inflated; CPU seconds are the steadier figure.",
            "",
            *cost_table(rows),
            "",
            _load_line(document),
        ]
    )


def write_docs(document: dict[str, Any]) -> None:
    """Replace the text between each table's markers in docs/RESULTS.md, nothing else."""
    text = DOCS.read_text()
    for name, body in (
        ("sensor-overview", overview(document)),
        ("sensor-baselines", details(document)),
    ):
        start, end = f"<!-- table {name} -->\n", f"<!-- end {name} -->"
        if text.count(start) != 1 or text.count(end) != 1:
            raise ValueError(f"{DOCS} needs one '{start.strip()}' and one '{end}'")
        head, rest = text.split(start)
        _, tail = rest.split(end)
        text = f"{head}{start}{body}\n{end}{tail}"
    DOCS.write_text(text)


def report(document: dict[str, Any]) -> str:
    """Every table, as windows_baselines.md holds them."""
    return (
        f"Raw: {COLLECTED.name}. Regenerate: `{document['command']}`, then "
        "`python -m benchmarks.windows_baselines --json` and "
        "`python -m benchmarks.windows_results`.\n\n"
        "VUS-PR (mean ± sd over seeds; SMD and UCR: the mean over their series per seed):\n\n"
        f"{overview(document)}\n\n{details(document)}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", action="store_true", help="also fill docs/RESULTS.md's tables")
    args = parser.parse_args()
    document = json.loads(COLLECTED.read_text())
    text = report(document)
    TABLES.write_text(text)
    print(text)
    if args.docs:
        write_docs(document)


if __name__ == "__main__":
    main()

"""Regenerate the tables of docs/RESULTS.md from the raw results in benchmarks/results/: each table
sits between `<!-- table NAME -->` and `<!-- end NAME -->`; the prose around them is kept."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks.audio_protocol import PROJECT_ROOT, RESULTS_DIR

DOC = PROJECT_ROOT / "docs" / "RESULTS.md"
CONDITIONS = ("clean", "6 dB", "0 dB", "-6 dB")
MODELS = ("auscult block", "auscult context", "pyod AudioAE")
SWEEP_COUNTS = (0, 1, 2, 5)

Row = dict[str, Any]


def _load(pattern: str) -> tuple[list[dict[str, Any]], list[Row]]:
    documents = [json.loads(p.read_text()) for p in sorted(RESULTS_DIR.glob(pattern))]
    return documents, [row for d in documents for row in d["rows"]]


def _stat(values: Iterable[float | None], digits: int = 3) -> str:
    """mean ± sample standard deviation over seeds, and how many when fewer than four."""
    present = [v for v in values if v is not None]
    if not present:
        return "n/a"
    text = f"{statistics.mean(present):.{digits}f}"
    if len(present) > 1:
        text += f" ± {statistics.stdev(present):.{digits}f}"
    if len(present) < 4:
        text += f" ({len(present)} seed{'s' if len(present) > 1 else ''})"
    return text


def _seconds(values: Iterable[float]) -> str:
    present = list(values)
    if not present:
        return "n/a"
    return f"{statistics.mean(present):.0f} s (max {max(present):.0f} s)"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _pick(rows: list[Row], **match: Any) -> list[Row]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def _label(row: Row) -> str:
    if row["model"] == "pyod AudioAE":
        return "PyOD AudioAE (peer)"
    backbone = row["model"].split()[1]
    return f"Auscult {backbone}, stage {2 if row['labelled'] else 1}"


def _auc(row: Row) -> float | None:
    value: float | None = row["auc"]
    return value


def _auc_at(condition: str) -> Callable[[Row], float | None]:
    def auc(row: Row) -> float | None:
        value: float | None = row["conditions"][condition]["auc"]
        return value

    return auc


def uav_tables(rows: list[Row], documents: list[dict[str, Any]]) -> dict[str, str]:
    groups = [(m, n) for m in MODELS for n in (0, 5) if _pick(rows, model=m, labelled=n)]
    peer = _pick(rows, model="pyod AudioAE")
    auc: list[list[str]] = []
    alarms: list[list[str]] = []
    versus: list[list[str]] = []
    for model, labelled in groups:
        chosen = _pick(rows, model=model, labelled=labelled)
        label = _label(chosen[0])

        def at(condition: str, key: str, chosen: list[Row] = chosen) -> list[float | None]:
            return [r["conditions"][condition][key] for r in chosen]

        auc.append(
            [label, str(labelled)]
            + [_stat(at(c, "auc")) for c in CONDITIONS]
            + [_stat(at("clean", "pauc")), _seconds(r["train_seconds"] for r in chosen)]
        )
        if chosen[0].get("operating_points"):
            alarms += _uav_alarm_rows(label, chosen)
        if model != "pyod AudioAE":
            versus.append([label] + [_paired(chosen, peer, _auc_at(c)) for c in CONDITIONS])
    first = _pick(rows, model="auscult block", labelled=5) or rows
    sides = ", ".join(f"{side} {n}" for side, n in first[0].get("split", {}).items())
    loads = [r["load_before"] for r in rows]

    def spread(key: str) -> str:
        values = {r["conditions"]["clean"][key] for r in rows}
        return f"{min(values)}" + (f" to {max(values)}" if len(values) > 1 else "")

    size = (
        f"Test per seed: {spread('test_recordings')} recordings, "
        f"{spread('test_normal_clips')} normal and {spread('test_anomalous_clips')} anomalous "
        f"10 s clips; recordings per side with 5 labelled: {sides}. Load average of the 2-core "
        f"machine as each run started: {min(loads):.1f} to {max(loads):.1f}."
    )
    tables = {
        "uav-auc": _table(
            ["model", "labelled anomalous recordings"]
            + [f"AUC {c}" for c in CONDITIONS]
            + ["pAUC clean", "training time per run"],
            auc,
        )
        + "\n\n"
        + size,
        "uav-versus-peer": _table(
            ["model"] + [f"AUC minus the peer's, {c}" for c in CONDITIONS], versus
        ),
    }
    # Results from before the out-of-fold thresholds carry no operating points; their
    # false alarms are not shown (the thresholds they were measured at no longer exist).
    if alarms:
        tables["uav-alarms"] = _table(
            [
                "model",
                "operating point, target",
                "thresholds rest on",
                "per seed: predicted rate [95 % interval] / measured, clean",
                "measured inside the interval",
            ]
            + [f"false-alarm rate, {c}" for c in CONDITIONS]
            + ["recall, clean", "precision, clean"],
            alarms,
        )
    return tables


def _uav_alarm_rows(label: str, chosen: list[Row]) -> list[list[str]]:
    """One line per operating point: the per-clip false-alarm rate the bundle predicted against
    the one measured on the held-out normal test clips, clean and with interference."""
    lines = []
    runs = sorted(chosen, key=lambda r: r["seed"])
    for index, point in enumerate(runs[0]["operating_points"]):
        name = point["name"]
        points = [r["operating_points"][index] for r in runs]
        predicted = [p["predicted_clip"] for p in points]

        def measured(condition: str, key: str, name: str = name) -> list[float | None]:
            return [r["conditions"][condition]["operating_points"][name][key] for r in runs]

        clean = measured("clean", "false_alarm_rate")
        inside = sum(
            m is not None and p is not None and p["low"] <= m <= p["high"]
            for p, m in zip(predicted, clean, strict=True)
        )
        per_seed = "; ".join(
            ("n/a" if p is None else f"{p['rate']:.3f} [{p['low']:.3f}, {p['high']:.3f}]")
            + " / "
            + ("n/a" if m is None else f"{m:.3f}")
            for p, m in zip(predicted, clean, strict=True)
        )
        target = 1 - point["target"] if point["rule"] == "gamma" else point["target"]
        default = " (default)" if name == runs[0]["default_operating_point"] else ""
        fits = [p["fit"] for p in points]
        lines.append(
            [
                label,
                f"{name}{default}, {target:g} per clip",
                f"{_range([f['recordings'] for f in fits], 0)} rec., "
                f"{_range([f['n_scores'] for f in fits], 0)} clips, "
                f"{fits[0]['folds'] or 'held-out'} folds",
                per_seed,
                f"{inside} of {len(runs)}",
            ]
            + [_stat(measured(c, "false_alarm_rate")) for c in CONDITIONS]
            + [_stat(measured("clean", "recall")), _stat(measured("clean", "precision"))]
        )
    return lines


def _paired(rows: list[Row], against: list[Row], key: Callable[[Row], float | None]) -> str:
    """Mean difference to the peer seed by seed, and in how many seeds it is higher."""
    peer = {r["seed"]: key(r) for r in against}
    pairs = [
        (value, peer[r["seed"]])
        for r in rows
        if (value := key(r)) is not None and peer.get(r["seed"]) is not None
    ]
    if not pairs:
        return "n/a"
    differences = [a - b for a, b in pairs if b is not None]
    higher, lower = sum(d > 0 for d in differences), sum(d < 0 for d in differences)
    return (
        f"{statistics.mean(differences):+.3f} (higher in {higher}, lower in {lower} "
        f"of {len(differences)})"
    )


def sweep_tables(rows: list[Row], documents: list[dict[str, Any]]) -> dict[str, str]:
    data_sets: dict[str, Any] = {}
    for document in documents:
        data_sets.update(document["data_sets"])
    auc, id_means, times, versus, gains = [], [], [], [], []
    loads = [r["load_before"] for r in rows]
    for name, info in data_sets.items():
        most = max(info["counts"])
        columns: list[int | None] = [n if n in info["counts"] else None for n in SWEEP_COUNTS]
        peer = _pick(rows, data=name, model="pyod AudioAE")
        for model in MODELS:
            chosen = _pick(rows, data=name, model=model)
            if not chosen:
                continue
            # The peer uses no labels: it has only the 0 column.
            cells = [
                _stat(r["auc"] for r in _pick(chosen, labelled=n))
                if n is not None and _pick(chosen, labelled=n)
                else "-"
                for n in columns
            ]
            cells.append(
                "-"
                if model == "pyod AudioAE"
                else f"{_stat(r['auc'] for r in _pick(chosen, labelled=most))} ({most})"
            )
            auc.append([name, model, *cells])
            times.append([name, model, _seconds(r["train_seconds"] for r in chosen)])
            if model == "pyod AudioAE":
                continue
            # The sweep's false alarms were measured at thresholds fitted the earlier way
            # (1 to 3 held-out recordings); only the threshold-free per-ID AUC is kept.
            id_means.append(
                [name, model]
                + [_stat(r["auc_id_mean"] for r in _pick(chosen, labelled=n)) for n in (0, most)]
            )
            stage1 = _pick(chosen, labelled=0)
            gains.append(
                [name, model]
                + [
                    _paired(_pick(chosen, labelled=n), stage1, _auc) if n else "-"
                    for n in [*columns[1:], most]
                ]
            )
            versus.append(
                [name, model]
                + [_paired(_pick(chosen, labelled=n), peer, lambda r: r["auc"]) for n in (0, most)]
            )
    return {
        "sweep-auc": _table(
            ["data", "model"]
            + [f"AUC, {n} labelled" for n in SWEEP_COUNTS]
            + ["AUC, all available labelled (how many)"],
            auc,
        ),
        "sweep-id-auc": _table(
            [
                "data",
                "model",
                "AUC mean over machine IDs, 0 labelled",
                "AUC mean over machine IDs, all labelled",
            ],
            id_means,
        ),
        "sweep-gain": _table(
            ["data", "model"]
            + [f"{n} labelled" for n in SWEEP_COUNTS[1:]]
            + ["all available labelled"],
            gains,
        ),
        "sweep-versus-peer": _table(
            ["data", "model", "AUC minus the peer's, 0 labelled", "AUC minus the peer's, all"],
            versus,
        ),
        "sweep-time": _table(["data", "model", "training time per run"], times)
        + f"\n\nLoad average of the 2-core machine as each run started: {min(loads):.1f} to "
        + f"{max(loads):.1f}.",
    }


def margin_table(rows: list[Row], documents: list[dict[str, Any]]) -> dict[str, str]:
    names = list(dict.fromkeys(r["data"] for r in rows))
    keys = ("labelled anomalous", "held-out normal", "train normal")
    table = []
    for name in names:
        chosen = _pick(rows, data=name)
        table.append(
            [name, str(len(chosen))]
            + [_stat((r[f"above_a[{k}]"] for r in chosen), 2) for k in keys]
            + [_stat((r[f"median_over_a[{k}]"] for r in chosen), 2) for k in keys]
        )
    header = ["data", "seeds"]
    header += [f"share above a: {k} blocks" for k in keys]
    header += [f"median / a: {k}" for k in keys]
    return {"margin": _table(header, table)}


# The paper's table 2 (MIMII fan; its a is on its own scale of the reconstruction error).
PAPER_TABLE2 = {
    0.8: (13.11, 0.897),
    0.95: (16.01, 0.899),
    0.99: (19.00, 0.923),
    0.999: (22.96, 0.917),
}


def table2_tables(rows: list[Row], documents: list[dict[str, Any]]) -> dict[str, str]:
    """Per data set: stage 1, then per r the margin a and the AUC after stage 2 (every test
    condition the run has), each mean ± sd over seeds, and the gain over the same seed's stage
    1 on the hardest condition."""
    tables = {}
    # A data set's seeds may have run in several processes, each writing its own file.
    by_data: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        by_data.setdefault(document["rows"][0]["data"], []).append(document)
    for name, parts in by_data.items():
        document = parts[0]
        chosen = _latest_table2([row for part in parts for row in part["rows"]])
        conditions = list(chosen[0]["conditions"])
        stage1 = _pick(chosen, stage=1)
        paper = name == "mimii_fan_id00"
        body = []
        for r in [None, *document["rs"]]:
            runs = _pick(chosen, r=r)
            if not runs:
                continue
            cells = [_stat(x["conditions"][c]["auc"] for x in runs) for c in conditions]
            hardest = _auc_at(conditions[-1])
            line = [
                "stage 1 only" if r is None else f"{r:g}",
                str(len(runs)),
                "-" if r is None else _stat((x["margin"] for x in runs), 4),
                *cells,
                "-" if r is None else _paired(runs, stage1, hardest),
                _stat((x["stage1_epochs" if r is None else "stage2_epochs"] for x in runs), 1),
                _seconds(x["train_seconds"] for x in runs),
            ]
            if paper:
                line[3:3] = ["-" if r is None else f"{PAPER_TABLE2[r][0]:.2f}"]
                line.insert(5, "-" if r is None else f"{PAPER_TABLE2[r][1]:.3f}")
            body.append(line)
        header = ["r", "seeds", "margin a"]
        header += ["paper's a"] if paper else []
        header += [f"AUC {c}" for c in conditions]
        if paper:
            header.insert(5, "paper's AUC")
        header += [
            f"AUC minus stage 1's, {conditions[-1]}",
            "best epoch (stage 1 row: stage 1; else stage 2)",
            "training time (stage 1 row: stage 1; else stage 2 alone)",
        ]
        first = chosen[0]

        def spread(key: str, chosen: list[Row] = chosen) -> str:
            return _range([x["conditions"]["clean"][key] for x in chosen], 0)

        loads = [x["load_before"] for x in chosen]
        sides = ", ".join(f"{side} {n}" for side, n in first["split"].items())
        note = (
            f"\n\nData: `{document['data']}`, {document['clip_seconds']:g} s clips; recordings "
            f"per side (seed {first['seed']}): {sides}; {first['train_normal_blocks']} normal "
            f"and {first['train_anomalous_blocks']} labelled anomalous training blocks; test "
            f"per seed {spread('test_normal_clips')} normal and "
            f"{spread('test_anomalous_clips')} anomalous clips of {spread('test_recordings')} "
            "recordings. Seeds "
            f"{', '.join(str(s) for s in sorted({x['seed'] for x in chosen}))}. Load average as "
            f"each step started: {min(loads):.1f} to {max(loads):.1f}. `uptime` at the start "
            "and end of each run: "
            + "; ".join(
                f'`{part["command"]}`: "{part["uptime_start"]}" / "{part["uptime_end"]}"'
                for part in parts
            )
            + "."
        )
        tables[f"table2-{name}"] = _table(header, body) + note
    return tables


def dcase_table3(rows: list[Row], documents: list[dict[str, Any]]) -> dict[str, str]:
    """The paper's table 3 in shape on the DCASE types: models as rows (0 labelled, or all
    available labelled), types as columns, pooled AUC mean ± sd over seeds; the peer's
    difference paired by seed; rows of these runs only (one file per type and model)."""
    rows = _latest(rows)
    types = list(dict.fromkeys(r["data"] for r in rows))
    keys = list(dict.fromkeys((r["model"], r["labelled"] > 0) for r in rows))
    body = []
    for model, labelled in keys:
        chosen = [r for r in _pick(rows, model=model) if (r["labelled"] > 0) == labelled]
        cells = []
        for name in types:
            runs = _pick(chosen, data=name)
            cells.append(_stat(r["auc"] for r in runs) if runs else "-")
        versus = "-" if model == "pyod AudioAE" else _paired_over_sets(chosen, rows)
        counts = sorted({r["labelled"] for r in chosen})
        body.append(
            [
                _overview_label(model, int(labelled)),
                "/".join(str(n) for n in counts),
                *cells,
                versus,
                _seconds(r["train_seconds"] for r in chosen),
            ]
        )
    sizes = "; ".join(
        f"{name.removeprefix('dcase_')} "
        f"{_range([r['test_normal_clips'] for r in _pick(rows, data=name)], 0)} + "
        f"{_range([r['test_anomalous_clips'] for r in _pick(rows, data=name)], 0)}"
        for name in types
    )
    loads = [r["load_before"] for r in rows]
    note = (
        f"\n\nTest clips per seed (normal + anomalous, 5 s): {sizes}. Seeds "
        f"{', '.join(str(s) for s in sorted({r['seed'] for r in rows}))}; load average as each "
        f"run started: {min(loads):.1f} to {max(loads):.1f}. {len(documents)} runs, one per type "
        "and model, each file's `command` field says how it ran."
    )
    header = ["model", "labelled anomalous recordings"]
    header += [f"AUC {name.removeprefix('dcase_')}" for name in types]
    header += ["AUC minus the peer's, every type and seed", "training time per run"]
    return {"table3-dcase": _table(header, body) + note}


def _paired_over_sets(chosen: list[Row], rows: list[Row]) -> str:
    """Mean AUC difference to the peer over every (type, seed) the model ran, and in how many
    pairs it is higher or lower."""
    peer = {(r["data"], r["seed"]): r["auc"] for r in _pick(rows, model="pyod AudioAE")}
    differences = [
        r["auc"] - peer[(r["data"], r["seed"])] for r in chosen if (r["data"], r["seed"]) in peer
    ]
    if not differences:
        return "n/a"
    higher, lower = sum(d > 0 for d in differences), sum(d < 0 for d in differences)
    return (
        f"{statistics.mean(differences):+.3f} (higher in {higher}, lower in {lower} of "
        f"{len(differences)} type-seed pairs)"
    )


def _latest_table2(rows: list[Row]) -> list[Row]:
    """One row per (seed, r), the one read last."""
    return list({(row["seed"], row["r"]): row for row in rows}.values())


def cli_table(document: dict[str, Any]) -> str:
    train, evaluate = document["train"], document["evaluate"]
    figures = evaluate["figures"]
    decision = document["clip_decision"]
    return _table(
        ["step", "wall time", "CPU time", "load average before / after", "result"],
        [
            [
                "`auscult train audio`",
                f"{train['wall_seconds']:.0f} s",
                f"{train['cpu_seconds']:.0f} s",
                f"{train['load_before']:.1f} / {train['load_after']:.1f}",
                f"stage 1 best epoch {document['training']['stage1_epochs']}, stage 2 best "
                f"epoch {document['training']['stage2_epochs']}",
            ],
            [
                "`auscult evaluate audio --json`",
                f"{evaluate['wall_seconds']:.0f} s",
                f"{evaluate['cpu_seconds']:.0f} s",
                f"{evaluate['load_before']:.1f} / {evaluate['load_after']:.1f}",
                f"AUC {figures['auc']:.4f}, pAUC {figures['pauc']:.4f} on "
                f"{figures['n_normal']} normal and {figures['n_anomaly']} anomalous clips of "
                f"{figures['n_recordings']} unseen recordings; false-alarm rate "
                f"{figures['false_alarm_rate']:.3f} at the clip threshold "
                f"(1 - r = {1 - decision['r']:.2f}), recall {figures['recall']:.3f}",
            ],
        ],
    )


def _range(values: list[float], digits: int = 3) -> str:
    low, high = min(values), max(values)
    return f"{low:.{digits}f}" if low == high else f"{low:.{digits}f} to {high:.{digits}f}"


def false_alarm_table(rows: list[Row], documents: list[dict[str, Any]]) -> dict[str, str]:
    """Per data set and operating point: what the bundle predicted for its clip false-alarm
    rate, and what the held-out normal test clips measured, seed by seed."""
    table = []
    for name in dict.fromkeys(r["set"] for r in rows):
        runs = sorted(_pick(rows, set=name), key=lambda r: r["seed"])
        first = runs[0]
        for point in first["points"]:
            fits = [r["points"][point]["fit"] for r in runs]
            predicted = [r["points"][point]["predicted"]["clip"] for r in runs]
            measured = [r["points"][point]["measured_false_alarm_rate"] for r in runs]
            target = first["points"][point]["target"]
            rate_target = 1 - target if first["points"][point]["rule"] == "gamma" else target
            inside = sum(
                m is not None and p["low"] <= m <= p["high"]
                for p, m in zip(predicted, measured, strict=True)
            )
            below = sum(m is not None and m < 2 * rate_target for m in measured)
            per_seed = "; ".join(
                f"{p['rate']:.3f} [{p['low']:.3f}, {p['high']:.3f}] / "
                + ("n/a" if m is None else f"{m:.3f}")
                for p, m in zip(predicted, measured, strict=True)
            )
            default = " (default)" if point == first["default_operating_point"] else ""
            table.append(
                [
                    name,
                    f"{point}{default}, {rate_target:g} per clip",
                    f"{_range([f['recordings'] for f in fits], 0)} rec., "
                    f"{_range([f['n_scores'] for f in fits], 0)} clips, "
                    f"{fits[0]['folds'] or 'held-out'} folds",
                    _range([r["test"]["normal_clips"] for r in runs], 0),
                    per_seed,
                    f"{inside} of {len(runs)}",
                    f"{below} of {len(runs)}",
                    _stat(r["points"][point]["measured_recall"] for r in runs),
                    f"{sum(bool(r['warnings']) for r in runs)} of {len(runs)}",
                    _seconds(r["wall_seconds"] for r in runs),
                ]
            )
    loads = [r["load_before"] for r in rows]
    note = (
        f"\n\nSeeds {', '.join(str(s) for s in sorted({r['seed'] for r in rows}))}; load average "
        f"of the 2-core machine as each run started: {min(loads):.1f} to {max(loads):.1f}."
    )
    header = [
        "data",
        "operating point, target",
        "thresholds rest on",
        "normal test clips",
        "per seed: predicted rate [95 % interval] / measured on held-out normal clips",
        "measured inside the interval",
        "measured below 2 x target",
        "recall at the point",
        "runs that warned",
        "wall time per run",
    ]
    return {"false-alarms": _table(header, table) + note}


OVERVIEW_SETS = ("mimii_fan_id00",)


def _overview_label(model: str, labelled: int) -> str:
    names = {
        "pyod AudioAE": "PyOD AudioAE (peer, unsupervised)",
        "usad block": "USAD (block inputs)",
        "deep_svdd block": "Deep SVDD (block inputs)",
        "devnet block": "DevNet (block inputs, labelled anomalies)",
    }
    if model in names:
        return names[model]
    _, backbone, *score = model.split()
    kind = "weakly supervised AE (stage 2)" if labelled else "AE (stage 1)"
    return f"Auscult {backbone}{' ' + score[0] if score else ''}, {kind}"


def _milliseconds(values: Iterable[float | None]) -> str:
    present = [v for v in values if v is not None]
    return f"{1000 * statistics.mean(present):.0f} ms" if present else "n/a"


def _latest(rows: list[Row]) -> list[Row]:
    """One row per (data, model, labelled, seed): the one from the file read last (files are
    read in name order, so a later run of the same configuration replaces the first)."""
    kept: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        kept[(row.get("data"), row["model"], row["labelled"], row["seed"])] = row
    return list(kept.values())


def _ahead(rows: list[Row], peer: list[Row], value: Callable[[Row], float], by: float) -> str:
    """In how many seeds `rows` beat the peer's row of the same seed by at least `by`."""
    peers = {r["seed"]: r for r in peer}
    wins = [value(r) - value(peers[r["seed"]]) >= by for r in rows if r["seed"] in peers]
    return f"{sum(wins)} of {len(wins)}" if wins else "-"


def overview_table() -> dict[str, str]:
    """One table: models as rows, data sets as columns (UAV clean and with interference, MIMII
    fan), mean ± sd AUC over seeds with the best mean per column in bold, and the costs."""
    uav = _latest(_load("audio_uav*.json")[1])
    sweep = _latest([r for r in _load("audio_sweep*.json")[1] if r["data"] in OVERVIEW_SETS])
    sweep = [r for r in sweep if r["labelled"] in (0, 5)]
    keys = list(dict.fromkeys((r["model"], r["labelled"]) for r in uav + sweep))
    columns = [f"UAV {c}" for c in CONDITIONS] + list(OVERVIEW_SETS)

    def cell_values(model: str, labelled: int, column: str) -> list[float | None]:
        if column.startswith("UAV "):
            condition = column.removeprefix("UAV ")
            return [
                r["conditions"][condition]["auc"]
                for r in _pick(uav, model=model, labelled=labelled)
            ]
        return [r["auc"] for r in _pick(sweep, model=model, labelled=labelled, data=column)]

    means: dict[str, float] = {}
    for column in columns:
        for model, labelled in keys:
            found = [v for v in cell_values(model, labelled, column) if v is not None]
            if found:
                means[column] = max(means.get(column, -1.0), statistics.mean(found))
    peer_uav = _pick(uav, model="pyod AudioAE")
    body = []
    for model, labelled in keys:
        cells = []
        for column in columns:
            values = cell_values(model, labelled, column)
            text = _stat(values)
            present = [v for v in values if v is not None]
            if present and statistics.mean(present) == means[column]:
                text = f"**{text}**"
            cells.append(text if present else "-")
        chosen_uav = _pick(uav, model=model, labelled=labelled)
        ahead, ahead_mimii = "-", "-"
        if model != "pyod AudioAE":
            # Ahead at both 0 and -6 dB: the smaller of the two margins counts.
            ahead = _ahead(
                chosen_uav,
                peer_uav,
                lambda r: min(r["conditions"][c]["auc"] for c in ("0 dB", "-6 dB")),
                0.02,
            )
            ahead_mimii = _ahead(
                _pick(sweep, model=model, labelled=labelled, data="mimii_fan_id00"),
                _pick(sweep, model="pyod AudioAE", data="mimii_fan_id00"),
                lambda r: float(r["auc"]),
                1e-9,
            )
        alarms = [r["conditions"]["clean"]["false_alarm_rate"] for r in chosen_uav]
        chosen = chosen_uav + _pick(sweep, model=model, labelled=labelled)
        train = [r["train_seconds"] for r in chosen_uav] or [r["train_seconds"] for r in chosen]
        costs = [
            _milliseconds(r.get("score_seconds_per_clip") for r in group)
            for group in (chosen_uav, _pick(sweep, model=model, labelled=labelled))
        ]
        label = _overview_label(model, labelled)
        body.append(
            [
                label,
                str(labelled),
                *cells,
                ahead,
                ahead_mimii,
                _stat(alarms),
                _seconds(train),
                *costs,
            ]
        )
    loads = [r["load_before"] for r in uav + sweep]
    header = ["model", "labelled anomalous recordings", *[f"AUC {c}" for c in columns]]
    header += [
        "UAV seeds ahead of the peer by >= 0.02 at 0 and -6 dB",
        "MIMII fan seeds ahead of the peer",
        "UAV clean false-alarm rate (default point)",
        "training time per run (UAV; else MIMII)",
        "scoring per 10 s UAV clip",
        "scoring per 5 s MIMII clip",
    ]
    note = (
        f"\n\nLoad average of the 2-core machine as each run started: {min(loads):.1f} to "
        f"{max(loads):.1f}. Scoring per clip: the bundle as served (log-mel and ONNX Runtime, "
        "no decoding), the peer through PyOD, mean over seeds at those loads; n/a where the run "
        "predates the measurement."
    )
    return {"audio-overview": _table(header, body) + note}


def _keep_markers(table: str) -> Callable[[re.Match[str]], str]:
    def fill(match: re.Match[str]) -> str:
        return match.group(1) + table + "\n" + match.group(2)

    return fill


def replace_tables(text: str, tables: dict[str, str]) -> str:
    for name, table in tables.items():
        pattern = re.compile(
            rf"(<!-- table {re.escape(name)} -->\n)(?:.*?\n)?(<!-- end {re.escape(name)} -->)", re.S
        )
        if not pattern.search(text):
            raise SystemExit(f"{DOC} has no <!-- table {name} --> ... <!-- end {name} --> block")
        text = pattern.sub(_keep_markers(table), text)
    return text


def main() -> None:
    tables: dict[str, str] = {}
    sources: list[tuple[str, Callable[[list[Row], list[dict[str, Any]]], dict[str, str]]]] = [
        ("audio_uav.json", uav_tables),
        ("audio_sweep.json", sweep_tables),
        ("audio_margin*.json", margin_table),
        ("audio_false_alarms.json", false_alarm_table),
        ("audio_table2_*.json", table2_tables),
        ("audio_sweep_dcase_*.json", dcase_table3),
    ]
    for pattern, render in sources:
        documents, rows = _load(pattern)
        if rows:
            tables.update(render(rows, documents))
    tables.update(overview_table())
    cli = RESULTS_DIR / "audio_cli.json"
    if cli.exists():
        tables["cli"] = cli_table(json.loads(cli.read_text()))
    DOC.write_text(replace_tables(DOC.read_text(encoding="utf-8"), tables), encoding="utf-8")
    print(f"updated {', '.join(tables)} in {DOC}")


if __name__ == "__main__":
    main()

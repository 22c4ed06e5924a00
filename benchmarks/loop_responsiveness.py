"""How soon the event loop answers under overload, with the service's defaults against each of
the two settings that keep it free switched off: the work threads at the loop's CPU priority
(AUSCULT_WORKER_THREADS_NICE=0) and full garbage collections over everything the process
holds (AUSCULT_GC_FREEZE=false). The variants alternate over several rounds, each round in
another order, so that the machine's drift falls on all alike. In each round and variant a
fresh server takes N closed-loop `hey` clients posting a real 10 s clip (256 by default, past
its capacity), and, from 2 s into that load, probe stations post the clip on fresh connections
(their refusals time a refusal itself; see benchmarks/capacity_http.py) while two more fetch
/healthz on fresh connections, 20 times a second each. Writes
benchmarks/results/loop_responsiveness[_alarm].json: every latency of every round, and their
percentiles pooled by variant; docs/BENCHMARKS.md ("Event loop under overload") quotes it.

    python -m benchmarks.loop_responsiveness [--clip normal|alarm] [--rounds 4] [--clients 256]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.capacity_http import PROBE_CLIENTS, PROBE_RATE
from benchmarks.hey_runs import finish_hey, hey, hey_command, percentile, run_hey, start_hey
from benchmarks.posted_clips import (
    BUNDLE,
    add_clip_arguments,
    chosen_clip,
    measure_and_write,
)
from benchmarks.processes import serving, uptime
from service.config import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "loop_responsiveness.json"
# Each variant's settings, all given explicitly, so that this process's environment changes none.
_DEFAULTS = {
    "AUSCULT_WORKER_THREADS_NICE": str(Settings.model_fields["worker_threads_nice"].default),
    "AUSCULT_GC_FREEZE": str(Settings.model_fields["gc_freeze"].default).lower(),
}
VARIANTS = {
    "defaults": _DEFAULTS,
    "AUSCULT_WORKER_THREADS_NICE=0": _DEFAULTS | {"AUSCULT_WORKER_THREADS_NICE": "0"},
    "AUSCULT_GC_FREEZE=false": _DEFAULTS | {"AUSCULT_GC_FREEZE": "false"},
}
PROBES_FROM_S = 2.0
HEALTH_CLIENTS = 2
HEALTH_RATE = 20.0


def _times_ms(rows: list[dict[str, str]], status: str) -> list[float]:
    return [round(1e3 * float(r["response-time"]), 2) for r in rows if r["status-code"] == status]


def _refusals_by_tenth(rows: list[dict[str, str]]) -> list[int]:
    """The load's refusals from PROBES_FROM_S on, counted by the tenth of a second (on the
    load's clock) in which each was answered: even counts when refused clients come back at
    any moment, one tall count when they come back in a burst every second."""
    counts = [0] * 10
    for row in rows:
        answered = float(row["offset"]) + float(row["response-time"])
        if row["status-code"] == "503" and answered >= PROBES_FROM_S:
            counts[int(10 * (answered % 1.0))] += 1
    return counts


def one_round(url: str, clip: Path, clients: int, seconds: float) -> dict[str, Any]:
    """The load, the probes and the health checks against one server."""
    score = f"{url}/v1/models/{BUNDLE.name}/score"
    hey(score, clip, 4, 2.0)  # warm every worker
    load = start_hey(hey_command(score, clip, clients, seconds))
    time.sleep(PROBES_FROM_S)
    span = seconds - PROBES_FROM_S - 1.0
    probes = start_hey(hey_command(score, clip, PROBE_CLIENTS, span, PROBE_RATE, keepalive=False))
    health = run_hey(
        ["hey", "-z", f"{span:g}s", "-c", str(HEALTH_CLIENTS), "-q", f"{HEALTH_RATE:g}",
         "-disable-keepalive", "-t", "30", "-o", "csv", f"{url}/healthz"]
    )  # fmt: skip
    probe_rows = finish_hey(probes)
    load_rows = finish_hey(load)
    return {
        "goodput_per_s": sum(r["status-code"] == "200" for r in load_rows) / seconds,
        "load_refused": sum(r["status-code"] == "503" for r in load_rows),
        "load_refusals_by_tenth_s": _refusals_by_tenth(load_rows),
        "probe_refusals_ms": _times_ms(probe_rows, "503"),
        "probe_scored_ms": _times_ms(probe_rows, "200"),
        "health_ms": _times_ms(health, "200"),
        "health_answered": len(health),
    }


def _pooled(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    refusals = [t for r in rounds for t in r["probe_refusals_ms"]]
    health = [t for r in rounds for t in r["health_ms"]]
    return {
        "goodput_per_s": [round(r["goodput_per_s"], 1) for r in rounds],
        "goodput_mean_per_s": statistics.mean(r["goodput_per_s"] for r in rounds),
        # 0.1 when the load's refusals come evenly through each second, 1.0 in one burst.
        "load_refusals_busiest_tenth_share": [
            round(max(tenths) / sum(tenths), 3) if sum(tenths) else None
            for tenths in (r["load_refusals_by_tenth_s"] for r in rounds)
        ],
        "probe_refusals": len(refusals),
        "probe_refusal_ms": {f"p{q}": percentile(refusals, q / 100) for q in (50, 90, 99)},
        "health_checks": len(health),
        "health_ms": {f"p{q}": percentile(health, q / 100) for q in (50, 90, 99)},
    }


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    if shutil.which("hey") is None:
        raise SystemExit("this benchmark needs hey on PATH: apt-get install -y hey")
    clip, source, _ = chosen_clip(args, work)
    models = work / "models"
    shutil.copytree(BUNDLE, models / BUNDLE.name)
    result: dict[str, Any] = {
        "clip": source,
        "clip_kind": args.clip,
        "clients": args.clients,
        "seconds": args.seconds,
        "machine": f"{os.cpu_count()}-core {platform.machine()}, {platform.python_version()}",
        "uptime_before": uptime(),
        "rounds": [],
    }
    by_variant: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for number in range(args.rounds):
        # Rotate the order, so that no variant always meets the machine as it was.
        for name in names[number % len(names) :] + names[: number % len(names)]:
            env = {"AUSCULT_RELOAD_POLL_SECONDS": "0", **VARIANTS[name]}
            with serving(models, args.port, env) as url:
                run = one_round(url, clip, args.clients, args.seconds)
            run |= {"round": number, "variant": name, "load_after": os.getloadavg()[0]}
            by_variant[name].append(run)
            result["rounds"].append(run)
            print(name, number, _pooled([run]), flush=True)
    result["pooled"] = {name: _pooled(runs) for name, runs in by_variant.items()}
    result["uptime_after"] = uptime()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_clip_arguments(parser, "alarm", RESULTS)
    parser.add_argument("--rounds", type=int, default=4, help="rounds of every variant")
    parser.add_argument("--clients", type=int, default=256, help="closed-loop hey clients")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each load")
    parser.add_argument("--port", type=int, default=18766)
    measure_and_write(parser.parse_args(argv), measure, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

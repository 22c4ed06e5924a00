"""Driving `auscult serve` with `hey` (Debian package `hey`, on PATH): its command lines, runs
started and collected, and summaries of the CSV row it writes for every answered request."""

from __future__ import annotations

import csv
import io
import math
import subprocess
import time
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank `q` quantile (0 < q <= 1) of `values`; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def hey_command(
    url: str,
    wav: Path,
    clients: int,
    seconds: float,
    per_client_rate: float | None = None,
    *,
    keepalive: bool = True,
) -> list[str]:
    """`hey` posting `wav` to `url` for `seconds` from `clients` clients, each at most
    `per_client_rate` requests a second if given, writing one CSV row per answer."""
    command = ["hey", "-z", f"{seconds:g}s", "-c", str(clients), "-m", "POST", "-T", "audio/wav",
               "-D", str(wav), "-t", "30", "-o", "csv", url]  # fmt: skip
    if per_client_rate is not None:
        command[1:1] = ["-q", f"{per_client_rate:g}"]
    if not keepalive:
        command[1:1] = ["-disable-keepalive"]
    return command


def summarise(
    rows: list[dict[str, str]], clients: int, span: float, per_client_rate: float | None
) -> dict[str, Any]:
    """Every response's time and status from hey's CSV rows, summarised over `span` seconds.
    hey leaves requests that failed without an answer (reset, timeout) out of its CSV; their
    count is in its summary, which CSV mode does not print, so `answered` is what the figures
    cover."""
    ok = [float(r["response-time"]) for r in rows if r["status-code"] == "200"]
    refused = [float(r["response-time"]) for r in rows if r["status-code"] == "503"]
    others = sorted({r["status-code"] for r in rows} - {"200", "503"})
    return {
        "clients": clients,
        "per_client_rate": per_client_rate,
        "seconds": span,
        "answered": len(rows),
        "ok": len(ok),
        "refused": len(refused),
        "other_statuses": others,
        "goodput_per_s": len(ok) / span,
        "ok_p50_ms": 1e3 * (percentile(ok, 0.50) or math.nan),
        "ok_p99_ms": 1e3 * (percentile(ok, 0.99) or math.nan),
        "refused_p50_ms": 1e3 * p if (p := percentile(refused, 0.50)) is not None else None,
        "refused_p99_ms": 1e3 * p if (p := percentile(refused, 0.99)) is not None else None,
    }


def start_hey(command: list[str]) -> subprocess.Popen[str]:
    """A `hey -o csv` run started in the background; `finish_hey` collects it."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def finish_hey(run: subprocess.Popen[str]) -> list[dict[str, str]]:
    """Wait for a started `hey` run: one CSV row per answered request (a failed run raises)."""
    output, _ = run.communicate()
    if run.returncode != 0:
        raise subprocess.CalledProcessError(run.returncode, run.args)
    return list(csv.DictReader(io.StringIO(output)))


def run_hey(command: list[str]) -> list[dict[str, str]]:
    """A `hey -o csv` run to its end: one row per answered request."""
    return finish_hey(start_hey(command))


def hey(url: str, wav: Path, clients: int, seconds: float) -> dict[str, Any]:
    """One `hey` run of `clients` closed-loop clients (each sends again once answered)."""
    rows = run_hey(hey_command(url, wav, clients, seconds))
    span = max((float(r["offset"]) + float(r["response-time"]) for r in rows), default=seconds)
    return summarise(rows, clients, span, None)


def paced_hey(
    url: str, wav: Path, clients: int, seconds: float, per_client_rate: float
) -> dict[str, Any]:
    """`clients` stations each sending `per_client_rate` requests a second, one `hey -c 1 -q`
    each, started evenly spread over one period: one `hey -c N -q` ticks all its clients
    at the same instant, a burst of N every period that no plant's stations would send."""
    gap = 1.0 / (clients * per_client_rate)
    command = hey_command(url, wav, 1, seconds, per_client_rate)
    stations = []
    for _ in range(clients):
        stations.append(start_hey(command))
        time.sleep(gap)
    rows = [row for station in stations for row in finish_hey(station)]
    # Each station's offsets start at its own start: the span is the run's length.
    return summarise(rows, clients, seconds + clients * gap, per_client_rate)

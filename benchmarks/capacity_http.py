"""HTTP capacity of `auscult serve` with its default settings, driven by `hey` (Debian package
`hey`; this benchmark needs it on PATH): throughput and p50/p99 latency at 1 to 128 concurrent
clients posting a real 10 s clip, goodput and the time of refused requests under overload,
against the in-process ceiling measured in the same run (as many processes as the server has
workers, each scoring the clip back to back), and p50/p99 at half that ceiling's rate, sent by
16 stations out of step with each other (one `hey -c 1 -q` each). The levels run in rounds,
in a different order each round, with the ceiling measured before, between and after them:
each round's ratios are against the ceilings on either side of it, and the medians over the
rounds are the figures. Writes benchmarks/results/capacity_http.json; docs/BENCHMARKS.md's
"HTTP capacity" section quotes it.

The clip is what a plant sends most (`--clip normal`, the default): the first 10 s of a real UAV
flight the default bundle judges normal, so the server keeps an event row for each and the audio
of a 5 % sample. `--clip alarm` posts a real DCASE clip the bundle alarms on: every answer then
also writes its audio as FLAC evidence, the cost of an alarm storm.

    python -m benchmarks.capacity_http [--clip normal|alarm] [--rounds 3] [--levels 1,4,...]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.hey_runs import hey, hey_command, paced_hey, run_hey, summarise
from benchmarks.posted_clips import (
    BUNDLE,
    PROJECT_ROOT,
    add_clip_arguments,
    chosen_clip,
    measure_and_write,
)
from benchmarks.processes import serving, uptime
from benchmarks.streams_capacity import cpu_by_process, server_pid, worker_pids
from service.audio.decode import DecodeLimits
from service.bundle.loader import load_bundle
from service.metrics import Metrics
from service.pipelines.audio_clip import score_clip
from service.scoring.audio import AudioScorer
from service.scoring.detectors import AudioDetector, OperatingPointChoice
from service.usable_cpus import usable_cpus

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "capacity_http.json"
PACED_CLIENTS = 16
# From this many clients on, PROBE_CLIENTS probe stations send beside them, each at most
# PROBE_RATE requests a second, every one on a new connection (`hey -disable-keepalive`): a
# client that reconnects, as one that waits out Retry-After would, is never held by the server,
# so the probes' refusals time the refusal itself, where the closed-loop clients' include the
# wait the server makes a client keep that sends again at once. They start PROBE_DELAY_S into
# the level: what they time is the overload once it is established, not the first instant, when
# every closed-loop client connects and sends its 320 kB at once (the probes' slowest refusals,
# 183 to 225 ms, all came from that instant when they started with the level).
PROBE_FROM_CLIENTS = 64
PROBE_CLIENTS = 4
PROBE_RATE = 10.0
PROBE_DELAY_S = 1.0


def in_process_seconds(bundle: Path, wav: bytes, repeats: int) -> float:
    """Median seconds to score the clip in this process on one thread: decode, log-mel, model."""
    scorer = AudioScorer(load_bundle(bundle))
    detector = AudioDetector.at(scorer, OperatingPointChoice())
    limits, metrics = DecodeLimits(max_seconds=60), Metrics()
    times = []
    for _ in range(repeats + 5):  # the first few warm ONNX Runtime and the caches
        started = time.perf_counter()
        score_clip(detector, wav, limits=limits, metrics=metrics)
        times.append(time.perf_counter() - started)
    return statistics.median(times[5:])


def _score_for(bundle: Path, wav: bytes, seconds: float, start_at: float) -> int:
    """In a child process: clips scored one after another from `start_at` (wall clock) for
    `seconds`, after warming up."""
    scorer = AudioScorer(load_bundle(bundle))
    detector = AudioDetector.at(scorer, OperatingPointChoice())
    limits, metrics = DecodeLimits(max_seconds=60), Metrics()
    for _ in range(5):
        score_clip(detector, wav, limits=limits, metrics=metrics)
    time.sleep(max(0.0, start_at - time.time()))
    done, stop = 0, time.time() + seconds
    while time.time() < stop:
        score_clip(detector, wav, limits=limits, metrics=metrics)
        done += 1
    return done


def in_process_ceiling(bundle: Path, wav: bytes, processes: int, seconds: float) -> float:
    """Clips per second that `processes` processes (as many as the server has workers) score
    together, each back to back with nothing else to do: what the CPUs allow without HTTP."""
    start_at = time.time() + 15.0  # every process loaded and warm by then
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        counts = pool.starmap(_score_for, [(bundle, wav, seconds, start_at)] * processes)
    return sum(counts) / seconds


def _probe(url: str, wav: Path, seconds: float) -> dict[str, Any]:
    """The probe stations, from PROBE_DELAY_S on for `seconds`: their answers, and the time
    of their refusals."""
    time.sleep(PROBE_DELAY_S)
    command = hey_command(url, wav, PROBE_CLIENTS, seconds, PROBE_RATE, keepalive=False)
    summary = summarise(run_hey(command), PROBE_CLIENTS, seconds, None)
    counts = ("answered", "ok", "refused", "refused_p50_ms", "refused_p99_ms")
    return {
        "clients": PROBE_CLIENTS,
        "rate_per_s": PROBE_RATE,
        "from_s": PROBE_DELAY_S,
        "seconds": seconds,
        **{key: summary[key] for key in counts},
    }


def hey_with_cpu(
    server: int,
    workers: list[int],
    url: str,
    wav: Path,
    clients: int,
    seconds: float,
    per_client_rate: float | None = None,
) -> dict[str, Any]:
    """A `hey` run, with the CPU seconds the server's processes spent meanwhile, in all and by
    worker: the kernel hands each new connection to one worker's socket by its address, so a
    few keep-alive clients can land unevenly, and this shows whether they did. Closed-loop runs
    of PROBE_FROM_CLIENTS clients or more have the probe stations beside them (`probe`): the
    clips they had scored count in the goodput, which is the server's (`clients_goodput_per_s`:
    the closed-loop clients' alone), the other figures are the closed-loop clients'."""
    probing = per_client_rate is None and clients >= PROBE_FROM_CLIENTS
    with ThreadPoolExecutor(1) as background:
        probe = background.submit(_probe, url, wav, seconds - PROBE_DELAY_S) if probing else None
        before = cpu_by_process(server)
        if per_client_rate is None:
            run = hey(url, wav, clients, seconds)
        else:
            run = paced_hey(url, wav, clients, seconds, per_client_rate)
        after = cpu_by_process(server)
        if probe is not None:
            run["probe"] = probe.result()
            run["clients_goodput_per_s"] = run["goodput_per_s"]
            run["goodput_per_s"] = (run["ok"] + run["probe"]["ok"]) / run["seconds"]
    run["server_cpu_s"] = sum(after.values()) - sum(before.values())
    run["worker_cpu_s"] = [round(after.get(w, 0.0) - before.get(w, 0.0), 2) for w in workers]
    return run


def _load() -> float:
    return os.getloadavg()[0]


def one_round(
    server: int,
    workers: list[int],
    score: str,
    clip: Path,
    levels: list[int],
    seconds: float,
    ceiling: float,
) -> dict[str, Any]:
    """Every level of closed-loop clients in the order given, then the paced stations at half
    `ceiling` (the one measured just before), the issue's rate, and at half the round's peak
    goodput, half of what the server showed it can answer."""
    runs = []
    for clients in levels:
        run = hey_with_cpu(server, workers, score, clip, clients, seconds)
        # The server's CPU per answer: with nearly every answer a refusal, what a refusal
        # costs, against a scored clip's cost at low concurrency.
        answered = run["answered"] + run.get("probe", {}).get("answered", 0)
        run["server_cpu_ms_per_answer"] = 1e3 * run["server_cpu_s"] / max(answered, 1)
        run["load_after"] = _load()
        runs.append(run)
        print(json.dumps(run), flush=True)
    peak = max(run["goodput_per_s"] for run in runs)
    paced = {
        "half_ceiling": _paced(server, workers, score, clip, seconds, ceiling / 2),
        "half_peak": _paced(server, workers, score, clip, seconds, peak / 2),
    }
    return {"runs": sorted(runs, key=lambda run: run["clients"]), "paced": paced}


def _paced(
    server: int, workers: list[int], score: str, clip: Path, seconds: float, rate: float
) -> dict[str, Any]:
    """Latency at `rate`, from PACED_CLIENTS stations sending an even share of it each, out of
    step with each other. 16, not 4: the kernel spreads connections over the workers by
    address, and 4 clients landed 3 to 1 and 4 to 0 on 2 workers in the two runs that used 4."""
    run = hey_with_cpu(
        server, workers, score, clip, PACED_CLIENTS, seconds, per_client_rate=rate / PACED_CLIENTS
    )
    run["load_after"] = _load()
    print(json.dumps(run), flush=True)
    return run


def _round_figures(round_: dict[str, Any], ceiling: float) -> dict[str, Any]:
    """A round's ratios: its peak goodput over the mean of the ceilings measured just before
    and just after it, and each level's goodput over that peak."""
    peak = max(run["goodput_per_s"] for run in round_["runs"])
    return {
        "in_process_ceiling_per_s": ceiling,
        "peak_goodput_per_s": peak,
        "peak_over_ceiling": peak / ceiling,
        "goodput_over_peak": {str(r["clients"]): r["goodput_per_s"] / peak for r in round_["runs"]},
        "paced_rate_over_peak": {
            name: run["goodput_per_s"] / peak for name, run in round_["paced"].items()
        },
    }


def _medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds, by level: a single run drifts with the machine."""
    levels = [run["clients"] for run in rounds[0]["runs"]]
    keys = ("goodput_per_s", "ok_p50_ms", "ok_p99_ms", "server_cpu_ms_per_answer")
    median = statistics.median
    return {
        "peak_over_ceiling": median([r["figures"]["peak_over_ceiling"] for r in rounds]),
        "goodput_over_peak": {
            str(c): median([r["figures"]["goodput_over_peak"][str(c)] for r in rounds])
            for c in levels
        },
        "levels": {
            str(c): {
                key: median([run[key] for r in rounds for run in r["runs"] if run["clients"] == c])
                for key in keys
            }
            for c in levels
        },
        "paced": {
            name: {
                key: median([r["paced"][name][key] for r in rounds])
                for key in ("goodput_per_s", "ok_p50_ms", "ok_p99_ms")
            }
            | {
                "rate_over_peak": median(
                    [r["figures"]["paced_rate_over_peak"][name] for r in rounds]
                )
            }
            for name in rounds[0]["paced"]
        },
    }


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The whole run; `work` holds the server's models folder and the normal clip. The
    in-process ceiling is measured before the first round, between rounds and after the last,
    and each round's ratios are against the ceilings on either side of it: the machine's speed
    drifts by more than the margins within minutes."""
    if shutil.which("hey") is None:
        raise SystemExit("this benchmark needs hey on PATH: apt-get install -y hey")
    clip, source, verdict = chosen_clip(args, work)
    wav = clip.read_bytes()
    levels = [int(level) for level in args.levels.split(",")]
    cpus = usable_cpus()
    result: dict[str, Any] = {
        "clip": source,
        "clip_kind": args.clip,
        "clip_verdict": {"anomaly": verdict.anomaly, "ratio": verdict.ratio},
        "clip_bytes": len(wav),
        "bundle": f"{BUNDLE.name} (the default bundle, copied to a temporary models folder)",
        "usable_cpus": cpus,
        "machine": f"{os.cpu_count()}-core {platform.machine()}, {platform.python_version()}",
        "load_before": _load(),
        "uptime_before": uptime(),
        "seconds_per_level": args.seconds,
        "in_process_ms_before": 1e3 * in_process_seconds(BUNDLE, wav, args.repeats),
    }
    models = work / "models"
    shutil.copytree(BUNDLE, models / BUNDLE.name)
    env = {"AUSCULT_RELOAD_POLL_SECONDS": "0"}
    rounds = []

    def ceiling() -> float:
        # As many processes as the server has workers, each scoring back to back, while the
        # server waits idle.
        clips_per_s = in_process_ceiling(BUNDLE, wav, cpus, args.seconds)
        print(f"in-process ceiling: {clips_per_s:.1f} clips/s", flush=True)
        return clips_per_s

    ceilings = [ceiling()]
    # `auscult serve` with its defaults: one worker per usable CPU.
    with serving(models, args.port, env) as url:
        server = server_pid(args.port)
        score = f"{url}/v1/models/{BUNDLE.name}/score"
        hey(score, clip, 4, 2.0)  # warm every worker
        workers = worker_pids(server)
        for number in range(args.rounds):
            # Rotate the levels' order, so that no level always meets the machine as it was.
            shift = number % len(levels)
            order = levels[shift:] + levels[:shift]
            round_ = one_round(server, workers, score, clip, order, args.seconds, ceilings[-1])
            ceilings.append(ceiling())
            round_ |= {"round": number, "order": order, "ceilings_per_s": ceilings[-2:]}
            round_["figures"] = _round_figures(round_, statistics.mean(ceilings[-2:]))
            print(json.dumps(round_["figures"]), flush=True)
            rounds.append(round_)
    result |= {
        "in_process_ms_after": 1e3 * in_process_seconds(BUNDLE, wav, args.repeats),
        "in_process_ceilings_per_s": ceilings,
        "rounds": rounds,
        "medians": _medians(rounds),
        "load_after": _load(),
        "uptime_after": uptime(),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_clip_arguments(parser, "normal", RESULTS)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each hey run")
    parser.add_argument("--levels", default="1,4,16,64,128,256", help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every level")
    parser.add_argument("--repeats", type=int, default=200, help="in-process clips, each side")
    parser.add_argument("--port", type=int, default=18765)
    measure_and_write(parser.parse_args(argv), measure, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

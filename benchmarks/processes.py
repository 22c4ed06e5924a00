"""The project's own commands run from a benchmark: one `auscult` command timed with the CPU it
used and the load around it, and `auscult serve` as a separate process until it is ready."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AUSCULT = Path(sys.executable).with_name("auscult")


@dataclass(frozen=True)
class TimedRun:
    command: str
    wall_seconds: float
    cpu_seconds: float
    load_before: float
    load_after: float
    stdout: str

    def figures(self) -> dict[str, Any]:
        """Everything but the output, in the order the results files keep."""
        return {
            "command": self.command,
            "wall_seconds": self.wall_seconds,
            "cpu_seconds": self.cpu_seconds,
            "load_before": self.load_before,
            "load_after": self.load_after,
        }


def timed(command: list[str]) -> TimedRun:
    """Run one command to its end; exits the benchmark with its stderr if it fails."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return TimedRun(
        command=" ".join(command),
        wall_seconds=wall,
        cpu_seconds=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        load_before=load,
        load_after=os.getloadavg()[0],
        stdout=done.stdout,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(
    models: Path,
    port: int,
    env: Mapping[str, str],
    options: Sequence[str] = (),
    *,
    ready_seconds: float = 180.0,
    stop_seconds: float = 120.0,
) -> Iterator[str]:
    """`auscult serve --models MODELS --port PORT OPTIONS` with `env` added to this process's
    environment; yields its URL once /readyz answers 200, and stops it on exit. Its event store
    lives in a temporary folder unless `env` names AUSCULT_STATE_DIR, never in the checkout."""
    command = [sys.executable, "-m", "service.cli", "serve", "--models", str(models),
               "--port", str(port), "--log-level", "warning", *options]  # fmt: skip
    state = tempfile.TemporaryDirectory(prefix="auscult-bench-state-")
    environment = {"AUSCULT_STATE_DIR": state.name, **os.environ, **env}
    process = subprocess.Popen(command, env=environment, cwd=PROJECT_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_seconds
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the service did not become ready")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=stop_seconds)
        state.cleanup()


def uptime() -> str:
    """What `uptime` says: the machine's load, recorded beside every timed figure."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def write_output(path: Path, result: Mapping[str, Any]) -> None:
    """A benchmark's raw results, whole, where its --output says."""
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")

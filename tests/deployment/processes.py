"""Real server processes for the deployment tests: start on a free loopback port, wait until they
answer, and always stop them, with their log at hand when something goes wrong."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RunningProcess:
    process: subprocess.Popen[bytes]
    log_file: Path
    base_url: str

    def log_tail(self, characters: int = 4000) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")[-characters:]


def wait_until(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2
) -> None:
    """Poll `condition` until it holds; fail saying `what` was awaited after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _answers(running: RunningProcess, path: str) -> bool:
    if running.process.poll() is not None:
        raise RuntimeError(
            f"{running.process.args!r} exited with {running.process.returncode}:\n"
            + running.log_tail()
        )
    try:
        return httpx.get(running.base_url + path, timeout=2.0).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def running_server(
    command: Sequence[str],
    *,
    port: int,
    ready_path: str,
    log_file: Path,
    env: dict[str, str] | None = None,
    start_timeout: float = 60.0,
) -> Iterator[RunningProcess]:
    """Run `command` until the block ends; ready once GET ready_path answers 200."""
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    running = RunningProcess(process, log_file, f"http://127.0.0.1:{port}")
    try:
        try:
            wait_until(
                lambda: _answers(running, ready_path),
                timeout=start_timeout,
                what=f"{command[0]} to answer {ready_path} 200",
            )
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; its log ends:\n{running.log_tail()}") from exc
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

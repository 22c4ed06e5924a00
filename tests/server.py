"""Real servers for tests: `running_server(settings)` serves create_app(settings) on a free
localhost port from a background thread, with the uvicorn options `auscult serve` uses;
`serve_process(...)` runs `auscult serve` itself as a subprocess, in a process group of its own
that is stopped whole on exit, workers included."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.config import Settings
from service.server import uvicorn_options

_START_TIMEOUT_S = 30.0
_PROCESS_START_TIMEOUT_S = 120.0
_PROCESS_STOP_TIMEOUT_S = 30.0
# Set in the environment of every `serve_process` server, so its processes can be found later.
MARKER_ENV = "AUSCULT_TEST_SERVER"


@dataclass(frozen=True)
class LiveServer:
    host: str
    port: int
    settings: Settings

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# Two workers, one still loading: 16 fresh connections all reach the ready one 1 time in 32,768.
_READY_IN_A_ROW = 16


def wait_until_ready(
    url: str, timeout_s: float = _START_TIMEOUT_S, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll /readyz until it answers 200 on _READY_IN_A_ROW fresh connections in a row, or fail
    saying what it last answered. Each worker of a server listens on a socket of its own and
    the kernel picks one per connection, so one 200 says only that some worker is ready."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    in_a_row = 0
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            response = httpx.get(f"{url}/readyz", timeout=2.0)
            if response.status_code == 200:
                in_a_row += 1
                if in_a_row == _READY_IN_A_ROW:
                    return
                continue
            last = f"{response.status_code} {response.text}"
        except httpx.TransportError as exc:
            last = repr(exc)
        in_a_row = 0
        time.sleep(0.05)
    raise TimeoutError(f"{url} was not ready after {timeout_s} s: {last}")


@contextmanager
def running_server(
    settings: Settings, *, wait_ready: bool = True, app: FastAPI | None = None
) -> Iterator[LiveServer]:
    """Start the app (create_app(settings) unless given) on uvicorn in a thread; stop it
    (lifespan shutdown included) on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    served = app if app is not None else create_app(settings)
    config = uvicorn.Config(served, log_level="warning", **uvicorn_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start; see the log above")
            time.sleep(0.01)
        live = LiveServer(host=host, port=port, settings=settings)
        if wait_ready:
            wait_until_ready(live.url)
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=_START_TIMEOUT_S)
        sock.close()


def processes_marked(marker: str) -> list[int]:
    """Pids of the running processes whose environment holds MARKER_ENV=marker: a served
    process and every worker it started (they inherit the environment)."""
    wanted = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours
        if wanted in environment.split(b"\0"):
            found.append(int(entry.name))
    return found


def _stop_group(process: subprocess.Popen[bytes], marker: str) -> None:
    """SIGTERM the server's process group (a clean stop, workers included), SIGKILL it if it
    does not end in time, and wait until none of its processes is left."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_PROCESS_STOP_TIMEOUT_S)
    deadline = time.monotonic() + _PROCESS_STOP_TIMEOUT_S
    while processes_marked(marker) and time.monotonic() < deadline:
        # Workers that outlived their supervisor: nothing stops them but the group kill.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        time.sleep(0.05)
    process.wait(timeout=_PROCESS_STOP_TIMEOUT_S)


@dataclass(frozen=True)
class ServeProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    marker: str  # the MARKER_ENV value of its processes

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serve_process(
    models: Path,
    log: Path,
    *,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    default_drain: bool = False,
) -> Iterator[ServeProcess]:
    """`python -m service.cli serve --models MODELS` on a free port until ready; on exit its whole
    process group is stopped and waited for. Without `default_drain` the server drains for 0 s
    (unless `env` says otherwise), so stopping it does not wait out the default drain."""
    port = free_port()
    command = [
        sys.executable, "-m", "service.cli", "serve", "--models", str(models),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        # One worker unless a test asks for more (a later --workers wins): the suite stays light.
        "--workers", "1", *args,
    ]  # fmt: skip
    marker = secrets.token_hex(8)
    no_drain = {} if default_drain else {"AUSCULT_DRAIN_SECONDS": "0"}
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **no_drain, **(env or {}), MARKER_ENV: marker},
            start_new_session=True,  # its own process group: stopped whole, workers included
        )
    running = ServeProcess(process, f"http://127.0.0.1:{port}", log, marker)
    try:
        try:
            # Every worker imports scipy, ONNX Runtime and FastAPI: slow on a busy 2-core host.
            wait_until_ready(running.url, timeout_s=_PROCESS_START_TIMEOUT_S, process=process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{running.log_text()[-4000:]}") from exc
        yield running
    finally:
        _stop_group(process, marker)

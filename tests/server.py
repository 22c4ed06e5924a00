"""Real servers for tests: `running_server(settings)` serves create_app(settings) on a free
localhost port from a background thread, with the uvicorn options `auscult serve` uses;
`serve_process(...)` runs `auscult serve` itself as a subprocess."""

from __future__ import annotations

import os
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

from service.app import create_app
from service.config import Settings
from service.server import uvicorn_options

_START_TIMEOUT_S = 30.0
_PROCESS_START_TIMEOUT_S = 120.0


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


def wait_until_ready(
    url: str, timeout_s: float = _START_TIMEOUT_S, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll /readyz until it answers 200, or fail saying what it last answered."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            response = httpx.get(f"{url}/readyz", timeout=2.0)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text}"
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.05)
    raise TimeoutError(f"{url} was not ready after {timeout_s} s: {last}")


@contextmanager
def running_server(settings: Settings, *, wait_ready: bool = True) -> Iterator[LiveServer]:
    """Start the app on uvicorn in a thread; stop it (lifespan shutdown included) on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    config = uvicorn.Config(create_app(settings), log_level="warning", **uvicorn_options(settings))
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


@dataclass(frozen=True)
class ServeProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serve_process(
    models: Path, log: Path, *, args: Sequence[str] = (), env: dict[str, str] | None = None
) -> Iterator[ServeProcess]:
    """`python -m service.cli serve --models MODELS` on a free port until ready; killed on exit
    if still running."""
    port = free_port()
    command = [
        sys.executable, "-m", "service.cli", "serve", "--models", str(models),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *args,
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    running = ServeProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        try:
            # Every worker imports scipy, ONNX Runtime and FastAPI: slow on a busy 2-core host.
            wait_until_ready(running.url, timeout_s=_PROCESS_START_TIMEOUT_S, process=process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{running.log_text()[-4000:]}") from exc
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)

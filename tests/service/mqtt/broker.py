"""A real Mosquitto broker for tests: started on a free localhost port with a temporary config
(anonymous clients, persistence in a temporary folder so that a restart keeps QoS-1 sessions),
restartable on the same port, stopped and waited for on exit."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.server import free_port

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


def mosquitto_binary() -> str:
    """The mosquitto executable, or skip the calling test saying how to get it."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.skip("mosquitto is not installed (scripts/install-test-tools installs it)")
    return found


class Mosquitto:
    def __init__(self, binary: str, folder: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.folder = folder
        self.log = folder / "mosquitto.log"
        self.config = folder / "mosquitto.conf"
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {data}/\n"
            # QoS-1 messages kept for a client that is away: enough for a whole test series.
            "max_queued_messages 100000\n"
            # As root mosquitto would switch to the 'mosquitto' user, who cannot write here.
            "user root\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self._process.returncode}: {self._log()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"mosquitto did not listen on {self.port}: {self._log()}")

    def stop(self) -> None:
        """SIGTERM: mosquitto writes its persistence file (sessions, queued messages) and exits."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT_S)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _log(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""


@contextmanager
def running_mosquitto(folder: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(mosquitto_binary(), folder)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()

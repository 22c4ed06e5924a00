"""One real `auscult serve` process for the whole fuzz package, on a temporary models folder
with a small audio bundle and a 3-channel windows bundle, behind an API key.

Its address space is capped a few GB above what it uses idle, so an input that makes it
allocate gigabytes fails its request (a 500 the tests report) instead of exhausting the host."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bundle_factory import make_windows_bundle
from tests.server import serve_process
from tests.service.clips import small_audio_bundle

AUDIO = "fuzz-audio"
WINDOWS = "fuzz-windows"
WINDOWS_CHANNELS = 3
API_KEY = "fuzz-key-0123456789abcdef"
_ADDRESS_SPACE_HEADROOM = 3 * 1024**3
# A stalled stream is cut off soon, so a session the server forgets to answer ends the test
# with a clear failure rather than waiting out the default minute.
IDLE_TIMEOUT_S = 10


@dataclass(frozen=True)
class FuzzServer:
    url: str
    pid: int

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": API_KEY}


def _cap_address_space(pid: int) -> None:
    status = Path(f"/proc/{pid}/status").read_text()
    size_kb = next(
        int(line.split()[1]) for line in status.splitlines() if line.startswith("VmSize")
    )
    limit = size_kb * 1024 + _ADDRESS_SPACE_HEADROOM
    resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))


@pytest.fixture(scope="package")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    folder = tmp_path_factory.mktemp("fuzz")
    models = folder / "models"
    small_audio_bundle(models / AUDIO, name=AUDIO)
    make_windows_bundle(models / WINDOWS, name=WINDOWS, channels=WINDOWS_CHANNELS)
    env = {
        "AUSCULT_API_KEYS": API_KEY,
        "AUSCULT_RELOAD_POLL_SECONDS": "0",
        "AUSCULT_WS_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT_S),
    }
    with serve_process(models, folder / "server.log", env=env) as server:
        _cap_address_space(server.process.pid)
        yield FuzzServer(server.url, server.process.pid)

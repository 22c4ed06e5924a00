"""One real `auscult serve` for the deployment tests, on a generated audio bundle."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.bundle_factory import make_audio_bundle
from tests.deployment.processes import RunningProcess, free_port, running_server

MODEL = "pump-ae"
STATIONS = ("press-1", "press-2")


@pytest.fixture(scope="package")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProcess]:
    """The service as operators run it, allow-listing STATIONS, serving one bundle, MODEL."""
    workdir = tmp_path_factory.mktemp("service")
    models = workdir / "models"
    make_audio_bundle(models / MODEL, name=MODEL, version="1")
    port = free_port()
    command = [
        sys.executable, "-m", "service.cli", "serve",
        "--models", str(models), "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--workers", "1",
    ]  # fmt: skip
    environment = {
        "AUSCULT_STATIONS": ",".join(STATIONS),
        "AUSCULT_API_KEYS": "",
        "AUSCULT_WORKER_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    with running_server(
        command, port=port, ready_path="/readyz", log_file=workdir / "service.log", env=environment
    ) as service:
        yield service

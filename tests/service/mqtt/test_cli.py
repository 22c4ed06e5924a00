"""`auscult bridge mqtt` as a process: it loads the models folder, scores what a device
publishes, shows its streams on its /metrics endpoint and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bundle_factory import make_windows_bundle, sensor_series
from tests.server import free_port
from tests.service.mqtt.broker import Mosquitto
from tests.service.mqtt.clients import Collector, Device, wait_until

_STOP_TIMEOUT_S = 30


@pytest.fixture
def bridge_process(
    tmp_path: Path, broker: Mosquitto
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    make_windows_bundle(tmp_path / "models" / "press", name="press", channels=4, window=20)
    metrics_port = free_port()
    env = {
        **os.environ,
        "AUSCULT_MQTT_PORT": str(broker.port),
        "AUSCULT_MQTT_CLIENT_ID": "bridge-cli",
        "AUSCULT_MQTT_METRICS_PORT": str(metrics_port),
        "AUSCULT_STATIONS": "line-1",
        "AUSCULT_MQTT_MAX_PAYLOAD_BYTES": str(16 * 1024 * 1024),
        "AUSCULT_LOG_FORMAT": "json",
    }
    command = [sys.executable, "-m", "service.cli", "bridge", "mqtt"]
    with (tmp_path / "bridge.log").open("wb") as log:
        process = subprocess.Popen(
            [*command, "--models", str(tmp_path / "models")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        yield process, f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=_STOP_TIMEOUT_S)


def _metrics(url: str) -> str:
    try:
        return httpx.get(url, timeout=2).text
    except httpx.TransportError:
        return ""


def test_the_bridge_command_scores_reports_metrics_and_drains_on_sigterm(
    bridge_process: tuple[subprocess.Popen[bytes], str], broker: Mosquitto, tmp_path: Path
) -> None:
    process, metrics_url = bridge_process
    wait_until(lambda: "auscult_mqtt_connected 1.0" in _metrics(metrics_url), 120, "a connection")
    collector = Collector(broker.port, "auscult/out/#")
    device = Device(broker.port)
    try:
        series = sensor_series(100, channels=4, seed=1)
        frame = {"samples": series.tolist(), "end": True}
        device.publish("auscult/in/press/line-1/sensor", json.dumps(frame))
        end = collector.wait_for("auscult/out/press/line-1/verdicts", lambda m: m["type"] == "end")
        assert end["verdicts"] == 100
        text = _metrics(metrics_url)
        assert 'auscult_scored_total{model="press",source="stream",station="line-1"} 100.0' in text
        assert 'auscult_mqtt_messages_total{direction="in",kind="sensor"} 1.0' in text
        assert 'auscult_model_info{kind="windows",model="press",version="1"} 1.0' in text
        # A long series, received but not yet scored when SIGTERM comes: its verdicts still go
        # out before the bridge stops.
        long = sensor_series(40_000, channels=4, seed=2)
        frame = {"samples": long.tolist(), "end": True}
        device.publish("auscult/in/press/line-2/sensor", json.dumps(frame))
        received = 'auscult_mqtt_messages_total{direction="in",kind="sensor"} 2.0'
        wait_until(lambda: received in _metrics(metrics_url), 60, "the long series")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=_STOP_TIMEOUT_S) == 0
        end = collector.wait_for("auscult/out/press/line-2/verdicts", lambda m: m["type"] == "end")
        assert end["verdicts"] == 40_000
    finally:
        collector.close()
        device.close()
    # AUSCULT_LOG_FORMAT=json: the bridge logs one JSON object per line, as the service does.
    records = [json.loads(line) for line in (tmp_path / "bridge.log").read_text().splitlines()]
    assert any(r["message"].startswith("serving press 1") for r in records), records
    assert {"time", "level", "logger", "message"} <= set(records[0])

"""docs/API.md's MQTT section matches the bridge: its Python example runs against a real
Mosquitto broker and bridge, and its result and error samples are the messages the bridge
publishes (the same fields)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from service.config import Settings
from service.mqtt.results import AlarmResult, BlocksResult, EndResult, ErrorResult, StepsResult
from service.mqtt.settings import MqttSettings
from tests.bundle_factory import make_windows_bundle
from tests.docs.examples import PROJECT_ROOT, CodeBlock, code_blocks
from tests.realdata import DATA_DIR, real_data
from tests.service.mqtt.broker import Mosquitto
from tests.service.mqtt.clients import running_bridge

API = PROJECT_ROOT / "docs" / "API.md"
RESULTS: dict[str, type[BaseModel]] = {
    "steps": StepsResult,
    "blocks": BlocksResult,
    "alarm": AlarmResult,
    "end": EndResult,
    "error": ErrorResult,
}


def _mqtt_blocks() -> list[CodeBlock]:
    text = API.read_text(encoding="utf-8")
    start = text.index("\n## MQTT\n")
    end = text.index("\n## ", start + 1)
    first, last = text[:start].count("\n") + 1, text[:end].count("\n") + 1
    return [block for block in code_blocks(API) if first <= block.line <= last]


def _fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def test_every_result_sample_has_the_fields_of_its_message() -> None:
    samples = [json.loads(b.text) for b in _mqtt_blocks() if b.language == "json"]
    # Every kind of message is shown (alarms twice: a sensor's and an audio stream's).
    assert {s["type"] for s in samples} == set(RESULTS)
    for sample in samples:
        model = RESULTS[sample["type"]]
        assert set(sample) == _fields(model), sample["type"]
        model.model_validate(sample)


@pytest.fixture
def bridge(tmp_path_factory: pytest.TempPathFactory, broker: Mosquitto) -> Iterator[int]:
    models = tmp_path_factory.mktemp("models")
    # Named as the docs' sensor bundle, with SMD's 38 channels.
    make_windows_bundle(models / "smd-1-2", name="smd-1-2", channels=38, window=50, stride=25)
    settings = Settings(models_dir=models, reload_poll_seconds=0)
    with running_bridge(settings, MqttSettings(port=broker.port, client_id="bridge-docs")):
        yield broker.port


@pytest.mark.real_data
def test_the_python_example_runs_against_a_broker_and_the_bridge(bridge: int) -> None:
    real_data("timeseries/SMD")
    (example,) = [b for b in _mqtt_blocks() if b.language == "python"]
    script = example.text.replace("../shared/data", str(DATA_DIR))
    environment: dict[str, Any] = {**os.environ, "AUSCULT_MQTT_PORT": str(bridge)}
    run = subprocess.run(
        [sys.executable, "-"],
        input=script,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=environment,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    *alarms, last = run.stdout.splitlines()
    assert last == "400 steps judged"
    assert all(line.startswith("alarm at steps ") for line in alarms), alarms

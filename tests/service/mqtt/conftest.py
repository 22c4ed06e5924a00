"""A Mosquitto broker per test module (skipped where mosquitto is not installed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.service.mqtt.broker import Mosquitto, running_mosquitto


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    with running_mosquitto(tmp_path_factory.mktemp("mosquitto")) as running:
        yield running

"""What the MQTT tests drive: the bridge in a thread of its own (`running_bridge`), and paho-mqtt
clients standing for the devices (`Device`) and for whoever reads the results (`Collector`)."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from service.config import Settings
from service.events.store import EventStore
from service.metrics import Metrics
from service.mqtt.bridge import MqttBridge
from service.mqtt.settings import MqttSettings
from service.registry import ModelRegistry

_WAIT_S = 60.0


@dataclass
class RunningBridge:
    bridge: MqttBridge
    metrics: Metrics
    loop: asyncio.AbstractEventLoop
    events: EventStore | None = None

    def wait_connected(self, timeout_s: float = _WAIT_S) -> None:
        wait_until(self.bridge.connected.is_set, timeout_s, "the bridge to connect")


@contextmanager
def running_bridge(settings: Settings, mqtt: MqttSettings) -> Iterator[RunningBridge]:
    """The bridge on its own event loop in a thread, its models loaded and its event store
    opened (when settings ask for one) as the CLI does."""
    metrics = Metrics(settings.stations)
    registry = ModelRegistry(settings.models_dir, metrics)
    registry.refresh()
    events = EventStore.open(settings, metrics) if settings.events_enabled else None
    bridge = MqttBridge(settings, mqtt, registry, metrics, events)
    loop = asyncio.new_event_loop()
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            loop.run_until_complete(bridge.run())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    running = RunningBridge(bridge, metrics, loop, events)
    try:
        running.wait_connected()
        yield running
    finally:
        loop.call_soon_threadsafe(bridge.stop)
        thread.join(timeout=_WAIT_S)
        loop.close()
        if events is not None:
            events.close()
    assert not failure, failure


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s:g} s for {what}")
        time.sleep(0.01)


def _client(port: int, client_id: str, *, persistent: bool) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent
    )
    client.reconnect_delay_set(min_delay=1, max_delay=1)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()  # reconnects by itself after a broker restart
    wait_until(client.is_connected, _WAIT_S, f"{client_id} to connect")
    return client


class Device:
    """Publishes with QoS 1 and waits for each PUBACK, so the broker holds what was sent."""

    def __init__(self, port: int) -> None:
        self._client = _client(port, f"device-{secrets.token_hex(4)}", persistent=False)

    def publish(self, topic: str, payload: bytes | str) -> None:
        wait_until(self._client.is_connected, _WAIT_S, "the device to reconnect")
        info = self._client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=_WAIT_S)
        assert info.is_published(), topic

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


class Collector:
    """Subscribes to every result with QoS 1 in a session the broker keeps, so results published
    while it is away (a broker restart) still reach it."""

    def __init__(self, port: int, topic: str) -> None:
        self._lock = threading.Lock()
        self._messages: list[tuple[str, dict[str, Any]]] = []
        self._topic = topic
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"collector-{secrets.token_hex(4)}",
            clean_session=False,
        )
        client.on_connect = self._subscribe
        client.on_message = self._keep
        client.on_subscribe = self._subscribed_now
        client.reconnect_delay_set(min_delay=1, max_delay=1)
        self._subscribed = threading.Event()
        client.connect("127.0.0.1", port, keepalive=30)
        client.loop_start()
        self._client = client
        if not self._subscribed.wait(_WAIT_S):
            raise TimeoutError("the collector did not subscribe")

    def _subscribe(self, client: paho.Client, *_: Any) -> None:
        client.subscribe(self._topic, qos=1)

    def _subscribed_now(self, *_: Any) -> None:
        self._subscribed.set()  # the broker acknowledged the subscription

    def _keep(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self._messages.append((message.topic, json.loads(message.payload)))

    def messages(self, topic: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [m for t, m in self._messages if topic is None or t == topic]

    def wait_for(
        self, topic: str, accept: Callable[[dict[str, Any]], bool], timeout_s: float = _WAIT_S
    ) -> dict[str, Any]:
        """The first message on `topic` that `accept` accepts, waiting for it."""
        found: list[dict[str, Any]] = []

        def arrived() -> bool:
            found[:] = [m for m in self.messages(topic) if accept(m)]
            return bool(found)

        wait_until(arrived, timeout_s, f"a message on {topic}")
        return found[0]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

"""The bridge loop: connect to the broker (reconnecting with exponential back-off), route each
input message to its stream, score streams in worker threads, queue results for publishing.

A stream is one asyncio task with a bounded queue, so its messages are scored in arrival order
and one at a time, while different streams score in parallel in the threads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import aiomqtt
from pydantic import BaseModel

from service.audio.resample import UnsupportedRateError
from service.config import Settings
from service.events.capture import EventSink
from service.metrics import Metrics
from service.mqtt.payloads import PayloadError, SensorFrame, decode_sensor_json
from service.mqtt.publisher import QOS_AT_LEAST_ONCE, Backlog, Outgoing, publish_backlog
from service.mqtt.results import AlarmResult, ErrorResult
from service.mqtt.settings import MqttSettings
from service.mqtt.streams import AudioBridgeStream, Outcome, SensorBridgeStream, WrongKindError
from service.mqtt.topics import ResultKind, StreamKey, TopicError, TopicLayout
from service.registry import ModelRegistry
from service.scoring.decision import NonFiniteError
from service.thread_priority import lowered_threads

logger = logging.getLogger(__name__)

BridgeStream = SensorBridgeStream | AudioBridgeStream
Item = SensorFrame | bytes


class UnknownModelError(LookupError):
    pass


class MqttBridge:
    def __init__(
        self,
        settings: Settings,
        mqtt: MqttSettings,
        registry: ModelRegistry,
        metrics: Metrics,
        events: EventSink | None = None,
    ) -> None:
        """`events`: where alarmed stretches of the streams are kept (the service's event
        store), or None."""
        self._settings = settings
        self._events = events
        self._mqtt = mqtt
        self._registry = registry
        self._metrics = metrics
        self._layout = TopicLayout(mqtt.input_prefix, mqtt.output_prefix, mqtt.audio_sample_rate)
        self._executor = ThreadPoolExecutor(
            max_workers=settings.worker_threads,
            thread_name_prefix="auscult-mqtt",
            initializer=lowered_threads(settings.worker_threads_nice),
        )
        self._backlog = Backlog(mqtt.backlog, metrics)
        self._streams: dict[StreamKey, _StreamTask] = {}
        self._stopping = asyncio.Event()
        self.connected = asyncio.Event()  # set while connected and subscribed
        self._subscribed = False  # during the current connection attempt

    def stop(self) -> None:
        """Ask `run` to return (from the bridge's event loop)."""
        self._stopping.set()

    async def run(self) -> None:
        """Serve until `stop`: connect, and reconnect after each loss with a doubling wait."""
        refresher = asyncio.create_task(self._refresh_models())
        delay = self._mqtt.reconnect_min_seconds
        try:
            while not self._stopping.is_set():
                self._subscribed = False
                connection = asyncio.create_task(self._connection())
                stopping = asyncio.create_task(self._stopping.wait())
                await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not connection.done():
                    await self._drain(connection)
                    connection.cancel()
                    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                        await connection
                    break
                error = connection.exception()
                if error is not None and not isinstance(error, aiomqtt.MqttError):
                    raise error
                if self._subscribed:
                    delay = self._mqtt.reconnect_min_seconds
                self._metrics.mqtt_reconnects.inc()
                logger.warning("MQTT broker %s:%s lost or unreachable (%s); retrying in %.1f s",
                               self._mqtt.host, self._mqtt.port, error, delay)  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                delay = min(delay * 2, self._mqtt.reconnect_max_seconds)
        finally:
            refresher.cancel()
            for stream in list(self._streams.values()):
                stream.task.cancel()
            tasks = [refresher, *(s.task for s in self._streams.values())]
            await asyncio.gather(*tasks, return_exceptions=True)
            self._executor.shutdown(wait=True, cancel_futures=True)

    async def _drain(self, connection: asyncio.Task[None]) -> None:
        """Before stopping, let queued input be scored and the results be acknowledged, for up
        to AUSCULT_MQTT_DRAIN_SECONDS."""
        deadline = time.monotonic() + self._mqtt.drain_seconds
        while time.monotonic() < deadline and not connection.done():
            if not self._backlog and not any(s.busy for s in self._streams.values()):
                return
            await asyncio.sleep(0.02)

    async def _connection(self) -> None:
        """One broker connection until it fails (aiomqtt.MqttError)."""
        mqtt = self._mqtt
        client = aiomqtt.Client(
            mqtt.host,
            mqtt.port,
            identifier=mqtt.client_id,
            # The broker keeps the subscription and queues QoS-1 input while the bridge is away.
            clean_session=False,
            keepalive=mqtt.keepalive_seconds,
            username=mqtt.username,
            password=mqtt.password.get_secret_value() if mqtt.password else None,
            max_inflight_messages=mqtt.max_inflight,
            queue_type=_counting_queue(mqtt.input_backlog, self._metrics),
        )
        # aiomqtt warns above 10 calls awaiting an answer; the publisher awaits up to this many.
        client.pending_calls_threshold = mqtt.max_inflight + 1
        async with client:
            await client.subscribe(self._layout.subscription, qos=QOS_AT_LEAST_ONCE)
            self._subscribed = True
            self._metrics.mqtt_connected.set(1)
            self.connected.set()
            logger.info("MQTT bridge connected to %s:%s", mqtt.host, mqtt.port)
            tasks = {
                asyncio.create_task(self._receive(client)),
                asyncio.create_task(
                    publish_backlog(client, self._backlog, mqtt.max_inflight, self._metrics)
                ),
            }
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # the MqttError that ended the connection
            finally:
                self.connected.clear()
                self._metrics.mqtt_connected.set(0)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            await self._route(message.topic.value, payload if isinstance(payload, bytes) else b"")

    async def _route(self, topic: str, payload: bytes) -> None:
        """Hand one input message to its stream, or answer on the error topic."""
        try:
            key = self._layout.parse(topic)
        except TopicError as exc:
            self._metrics.mqtt_messages.labels("in", "other").inc()
            self.error(topic, "bad_topic", str(exc))
            return
        self._metrics.mqtt_messages.labels("in", key.format).inc()
        if len(payload) > self._mqtt.max_payload_bytes:
            limit = self._mqtt.max_payload_bytes
            self.error(topic, "too_large", f"{len(payload)} bytes is over {limit}; send less")
            return
        item: Item = payload
        if key.format == "sensor":
            try:
                # Parsed here: a JSON frame's `device` field may name another stream.
                frame = decode_sensor_json(payload)
                if frame.device is not None:
                    key = key.with_device(frame.device)
            except (PayloadError, TopicError) as exc:
                self.error(topic, "bad_payload", str(exc))
                return
            item = frame
        stream = self._streams.get(key)
        if stream is None:
            if len(self._streams) >= self._mqtt.max_streams:
                self.error(
                    topic,
                    "too_many_streams",
                    f"all {self._mqtt.max_streams} streams are open; end one or wait for one "
                    f"to idle out ({self._mqtt.stream_idle_seconds:g} s)",
                )
                return
            stream = self._streams[key] = _StreamTask(self, key, topic)
            self._metrics.mqtt_streams.set(len(self._streams))
        # Back-pressure: a stream whose queue is full holds up routing, not its input. Shielded:
        # the broker has this message's PUBACK already, so a lost connection must not drop it.
        await asyncio.shield(stream.put(item))

    def error(self, topic: str, code: str, message: str) -> None:
        """Report refused input on the error topic and count it; the bridge carries on."""
        self._metrics.mqtt_dropped.labels(code).inc()
        result = ErrorResult(topic=topic, code=code, message=message)
        self._backlog.put(
            Outgoing(self._layout.errors, result.model_dump_json().encode(), "errors")
        )

    def publish(self, key: StreamKey, results: list[BaseModel]) -> None:
        for result in results:
            kind: ResultKind = "alarms" if isinstance(result, AlarmResult) else "verdicts"
            topic = self._layout.results(key, kind)
            self._backlog.put(Outgoing(topic, result.model_dump_json().encode(), kind))

    def open_stream(self, key: StreamKey) -> BridgeStream:
        """Blocking (an audio stream designs its resampling filter)."""
        served = self._registry.get(key.model)
        if served is None:
            names = [m.name for m in self._registry.served()]
            raise UnknownModelError(f"no model {key.model!r} is served; served: {names}")
        opened = SensorBridgeStream if key.format.startswith("sensor") else AudioBridgeStream
        return opened(key, served, self._settings, self._metrics, self._events)

    def forget(self, key: StreamKey, stream: _StreamTask) -> None:
        if self._streams.get(key) is stream:
            del self._streams[key]
            self._metrics.mqtt_streams.set(len(self._streams))

    async def _refresh_models(self) -> None:
        """Pick up new bundles as the service does (AUSCULT_RELOAD_POLL_SECONDS)."""
        every = self._settings.reload_poll_seconds
        if every <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            await loop.run_in_executor(self._executor, self._registry.refresh)


def _apply(stream: BridgeStream, item: Item) -> Outcome:
    """In a worker thread: one input message on its stream."""
    if isinstance(stream, AudioBridgeStream):
        assert isinstance(item, bytes)
        return stream.pcm(item)
    if isinstance(item, SensorFrame):
        return stream.frame(item)
    return stream.f32(item)


class _StreamTask:
    """The task that scores one stream's messages in order; it ends with the stream (an end
    message, an error that ends it, or idleness) once nothing more is queued for it."""

    def __init__(self, bridge: MqttBridge, key: StreamKey, topic: str) -> None:
        self._bridge = bridge
        self._key = key
        self._topic = topic
        self._queue: asyncio.Queue[Item] = asyncio.Queue(bridge._mqtt.stream_backlog)
        self._scoring = False
        self.task = asyncio.create_task(self._run())

    async def put(self, item: Item) -> None:
        await self._queue.put(item)

    @property
    def busy(self) -> bool:
        """Whether messages of this stream wait or are being scored."""
        return self._scoring or not self._queue.empty()

    async def _run(self) -> None:
        bridge, key = self._bridge, self._key
        loop = asyncio.get_running_loop()
        idle = bridge._mqtt.stream_idle_seconds
        stream: BridgeStream | None = None
        try:
            while True:
                try:
                    first = await asyncio.wait_for(self._queue.get(), timeout=idle)
                except TimeoutError:
                    if stream is not None:
                        ended = await loop.run_in_executor(bridge._executor, stream.end, "idle")
                        bridge.publish(key, ended)
                    return
                # What queued up meanwhile goes to the thread together: one hop for many
                # messages, and the same verdicts, as a stream's do not depend on its messages.
                items = [first]
                while not self._queue.empty():
                    items.append(self._queue.get_nowait())
                self._scoring = True
                try:
                    stream, events = await loop.run_in_executor(
                        bridge._executor, self._score, stream, items
                    )
                finally:
                    self._scoring = False
                for event in events:
                    if isinstance(event, _Refusal):
                        bridge.error(self._topic, event.code, event.message)
                        continue
                    bridge.publish(key, event.results)
                    if event.duplicate:
                        bridge._metrics.mqtt_dropped.labels("duplicate").inc()
                if stream is None and self._queue.empty():
                    return
        finally:
            bridge.forget(key, self)

    def _score(
        self, stream: BridgeStream | None, items: list[Item]
    ) -> tuple[BridgeStream | None, list[Outcome | _Refusal]]:
        """In a worker thread: the messages in order; the stream after them (None once it
        ended) and what each gave."""
        events: list[Outcome | _Refusal] = []
        for item in items:
            try:
                if stream is None:
                    stream = self._bridge.open_stream(self._key)
                outcome = _apply(stream, item)
            except PayloadError as exc:
                events.append(_Refusal("bad_payload", str(exc)))  # the stream carries on
                continue
            except (UnknownModelError, WrongKindError, UnsupportedRateError,
                    NonFiniteError) as exc:  # fmt: skip
                events.append(_Refusal(_code(exc), f"{exc}; the stream was ended"))
                stream = None
                continue
            except Exception:
                logger.exception("MQTT stream %s failed", self._key)
                events.append(_Refusal("internal", "the bridge failed; see its log"))
                stream = None
                continue
            events.append(outcome)
            if outcome.ended:
                stream = None
        return stream, events


@dataclass(frozen=True)
class _Refusal:
    code: str
    message: str


def _code(exc: Exception) -> str:
    if isinstance(exc, UnknownModelError):
        return "unknown_model"
    if isinstance(exc, WrongKindError):
        return "wrong_kind"
    if isinstance(exc, UnsupportedRateError):
        return "bad_rate"
    return "non_finite"


def _counting_queue(limit: int, metrics: Metrics) -> type[asyncio.Queue[aiomqtt.Message]]:
    """aiomqtt's incoming queue, bounded, counting what it discards when full."""

    class CountingQueue(asyncio.Queue[aiomqtt.Message]):
        def __init__(self, maxsize: int = 0) -> None:
            super().__init__(limit)

        def put_nowait(self, item: aiomqtt.Message) -> None:
            if self.full():
                metrics.mqtt_dropped.labels("input_backlog_full").inc()
            super().put_nowait(item)  # raises QueueFull: aiomqtt logs and discards it

    return CountingQueue

"""Result publishing: a bounded backlog of outgoing messages, published with QoS 1 by one task
per broker connection. A message leaves the backlog only once the broker acknowledged it, so a
lost connection loses nothing that fits in the backlog; beyond it the oldest are dropped and
counted."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import aiomqtt

from service.metrics import Metrics

QOS_AT_LEAST_ONCE = 1


@dataclass(frozen=True, eq=False)  # identity: the same result may be queued twice
class Outgoing:
    topic: str
    payload: bytes
    kind: str  # verdicts | alarms | errors: the metrics label


class Backlog:
    def __init__(self, limit: int, metrics: Metrics) -> None:
        self._limit = limit
        self._metrics = metrics
        self._items: deque[Outgoing] = deque()
        self._ready = asyncio.Event()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Outgoing) -> None:
        """Queue a message; when full, drop the oldest: a fresh verdict matters more."""
        if len(self._items) >= self._limit:
            self._items.popleft()
            self.dropped += 1
            self._metrics.mqtt_dropped.labels("backlog_full").inc()
        self._items.append(item)
        self._metrics.mqtt_backlog.set(len(self._items))
        self._ready.set()

    async def head(self, most: int) -> list[Outgoing]:
        """The oldest `most` messages at least one, waiting for one."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return [self._items[i] for i in range(min(most, len(self._items)))]

    def done(self, sent: list[Outgoing]) -> None:
        """Forget messages the broker acknowledged (those still queued: while they were in
        flight, a full backlog may have dropped some)."""
        acknowledged = {id(item) for item in sent}
        # They were the oldest, and drops only take the oldest: what is left of them leads.
        while self._items and id(self._items[0]) in acknowledged:
            self._items.popleft()
        self._metrics.mqtt_backlog.set(len(self._items))


async def publish_backlog(
    client: aiomqtt.Client, backlog: Backlog, max_inflight: int, metrics: Metrics
) -> None:
    """Publish until the connection fails (aiomqtt.MqttError); what was in flight then stays in
    the backlog and goes out again after the reconnect: at least once, never lost."""
    while True:
        batch = await backlog.head(max_inflight)
        # paho writes them in call order: order is kept while their PUBACKs are awaited at once.
        await asyncio.gather(
            *(client.publish(m.topic, m.payload, qos=QOS_AT_LEAST_ONCE) for m in batch)
        )
        backlog.done(batch)
        for message in batch:
            metrics.mqtt_messages.labels("out", message.kind).inc()

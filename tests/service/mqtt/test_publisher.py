"""The bounded result backlog: the oldest messages go first when it is full, each drop is
counted, and only acknowledged messages leave it."""

from __future__ import annotations

import asyncio

from prometheus_client import generate_latest

from service.metrics import Metrics
from service.mqtt.publisher import Backlog, Outgoing


def _message(n: int) -> Outgoing:
    return Outgoing("auscult/out/m/d/verdicts", str(n).encode(), "verdicts")


def test_a_full_backlog_drops_the_oldest_and_counts_them() -> None:
    metrics = Metrics()
    backlog = Backlog(3, metrics)
    messages = [_message(n) for n in range(5)]
    for message in messages:
        backlog.put(message)
    assert (len(backlog), backlog.dropped) == (3, 2)
    assert asyncio.run(backlog.head(10)) == messages[2:]
    text = generate_latest(metrics.registry).decode()
    assert 'auscult_mqtt_messages_dropped_total{reason="backlog_full"} 2.0' in text
    assert "auscult_mqtt_backlog 3.0" in text


def test_only_acknowledged_messages_leave_even_when_drops_happen_meanwhile() -> None:
    backlog = Backlog(3, Metrics())
    messages = [_message(n) for n in range(6)]
    for message in messages[:3]:
        backlog.put(message)
    in_flight = asyncio.run(backlog.head(2))
    assert in_flight == messages[:2]
    backlog.put(messages[3])  # full: drops messages[0], which is in flight
    backlog.done(in_flight)
    assert asyncio.run(backlog.head(10)) == messages[2:4]
    # A message equal in content but queued again is a message of its own.
    backlog.put(_message(2))
    assert len(backlog) == 3

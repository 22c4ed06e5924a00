"""Keep-alive connections spread over the workers: a worker above its share of the server's
HTTP connections closes the surplus after answers, then waits for fresh counts from every other
worker; a real server does it with `Connection: close`."""

from __future__ import annotations

import asyncio
import http.client
import os
import time
from pathlib import Path

import pytest
import websockets

from service.connection_balance import CONNECTIONS_DIR, ConnectionBalance
from service.metrics import Metrics
from tests.server import serve_process
from tests.service.clips import small_audio_bundle

POLL = 0.01


def _balance(folder: Path | None, connections: int) -> ConnectionBalance:
    balance = ConnectionBalance(folder, poll_seconds=POLL, metrics=Metrics())
    for _ in range(connections):
        balance.opened()
    return balance


async def _exchanged(*balances: ConnectionBalance) -> None:
    """Every balance publishes and reads the others' counts a few times."""
    tasks = [asyncio.create_task(b.run()) for b in balances]
    await asyncio.sleep(20 * POLL)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _closes(balance: ConnectionBalance, answers: int) -> int:
    return sum(balance.should_close() for _ in range(answers))


def test_a_worker_above_its_share_closes_its_surplus_once_per_fresh_count(
    tmp_path: Path,
) -> None:
    busy, idle = _balance(tmp_path, 5), _balance(tmp_path, 1)
    asyncio.run(_exchanged(busy, idle))
    assert busy.share == 3
    # Its surplus, not one per answer.
    assert _closes(busy, 10) == 2
    assert _closes(idle, 10) == 0
    # Not again on the other's count from before those closes.
    asyncio.run(_exchanged(busy))
    assert _closes(busy, 10) == 0
    # Both closed connections came back to it: once the other has published since, again.
    asyncio.run(_exchanged(busy, idle))
    assert _closes(busy, 10) == 2
    for _ in range(2):
        busy.closed()
        idle.opened()
    asyncio.run(_exchanged(busy, idle))
    assert _closes(busy, 10) == 0


def test_no_close_once_connections_that_ended_meanwhile_reach_the_share(tmp_path: Path) -> None:
    busy, idle = _balance(tmp_path, 4), _balance(tmp_path, 2)
    asyncio.run(_exchanged(busy, idle))
    busy.closed()  # a client left: 3 against 2 is this worker's share
    assert _closes(busy, 10) == 0


@pytest.mark.parametrize(("mine", "theirs"), [(2, 2), (3, 2), (2, 3), (0, 0), (5, 4)])
def test_a_worker_at_or_below_its_share_keeps_its_connections(
    tmp_path: Path, mine: int, theirs: int
) -> None:
    balance, other = _balance(tmp_path, mine), _balance(tmp_path, theirs)
    asyncio.run(_exchanged(balance, other))
    assert _closes(balance, 10) == 0
    assert _closes(other, 10) == 0


def test_three_workers_share_by_three(tmp_path: Path) -> None:
    workers = [_balance(tmp_path, 5), _balance(tmp_path, 2), _balance(tmp_path, 2)]
    asyncio.run(_exchanged(*workers))
    assert [w.share for w in workers] == [3, 3, 3]
    assert [_closes(w, 10) for w in workers] == [2, 0, 0]


def test_a_dead_workers_count_is_ignored_and_removed(tmp_path: Path) -> None:
    dead = tmp_path / CONNECTIONS_DIR / "999999999-0000"  # no such process
    dead.parent.mkdir()
    dead.write_text("0")
    balance = _balance(tmp_path, 4)
    asyncio.run(_exchanged(balance))
    assert not dead.exists()
    assert balance.share == 4
    assert _closes(balance, 10) == 0


def test_a_count_left_unwritten_for_long_is_not_counted(tmp_path: Path) -> None:
    """A count file of a live process id that nobody rewrites (an earlier server's, under a
    reused id) neither lowers this worker's share nor blocks its closes."""
    old = tmp_path / CONNECTIONS_DIR / f"{os.getpid()}-earlier"
    old.parent.mkdir()
    old.write_text("0")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    busy, idle = _balance(tmp_path, 5), _balance(tmp_path, 1)
    asyncio.run(_exchanged(busy, idle))
    assert busy.share == 3
    assert _closes(busy, 10) == 2
    asyncio.run(_exchanged(busy, idle))
    assert _closes(busy, 10) == 2


def test_without_a_folder_nothing_is_closed_and_close_removes_the_count(
    tmp_path: Path,
) -> None:
    alone = _balance(None, 8)
    asyncio.run(_exchanged(alone))
    assert _closes(alone, 10) == 0
    balance = _balance(tmp_path, 1)
    asyncio.run(_exchanged(balance))
    assert len(list((tmp_path / CONNECTIONS_DIR).iterdir())) == 1
    balance.close()
    assert list((tmp_path / CONNECTIONS_DIR).iterdir()) == []


def _connection_closes(url: str, connections: int, seconds: float) -> tuple[int, int]:
    """`connections` keep-alive clients asking /healthz for `seconds`: how many answers said
    `Connection: close`, and how many answers there were."""
    host, port = url.removeprefix("http://").split(":")
    clients = [http.client.HTTPConnection(host, int(port), timeout=10) for _ in range(connections)]
    closes = answers = 0
    stop = time.monotonic() + seconds
    try:
        while time.monotonic() < stop:
            for client in clients:
                client.request("GET", "/healthz")
                response = client.getresponse()
                response.read()
                assert response.status == 200
                answers += 1
                if response.getheader("connection", "").lower() == "close":
                    closes += 1
                    client.close()  # http.client reconnects on the next request
            time.sleep(0.01)
    finally:
        for client in clients:
            client.close()
    return closes, answers


def _served_beside_a_peer(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A models folder for one worker, and where a second worker that the test plays
    publishes its count, under the test's own (live) process id; the file, and the environment
    that makes the worker share its folder. A count is only counted for 8 polls (2 s) after it
    was written: the test writes it again before each phase."""
    small_audio_bundle(tmp_path / "models" / "fan", name="fan")
    shared = tmp_path / "workers"
    peer = shared / CONNECTIONS_DIR / f"{os.getpid()}-test"
    peer.parent.mkdir(parents=True)
    return peer, {"AUSCULT_RELOAD_POLL_SECONDS": "0", "AUSCULT_WORKER_SYNC_DIR": str(shared)}


def test_a_real_worker_above_its_share_answers_connection_close(tmp_path: Path) -> None:
    """Holding 4 connections against the other worker's 0, the worker closes 2 (1 if an
    exchange caught a client reconnecting); more only once the other has published again;
    against 4, none."""
    peer, env = _served_beside_a_peer(tmp_path)
    with serve_process(tmp_path / "models", tmp_path / "serve.log", env=env) as served:
        peer.write_text("0")
        closes, answers = _connection_closes(served.url, 4, 1.5)
        # The closed connections come back to the one worker: still 4 against 0, but no
        # more closes on the other's count from before them (6 exchanges in 1.5 s).
        assert 1 <= closes <= 2, (closes, answers)
        peer.write_text("0")
        closes, answers = _connection_closes(served.url, 4, 1.5)
        assert 1 <= closes <= 2, (closes, answers)
        peer.write_text("4")
        time.sleep(0.5)  # the worker reads the new count
        closes, answers = _connection_closes(served.url, 4, 1.5)
        assert closes == 0, (closes, answers)
        assert answers > 40


def test_streams_are_not_counted_as_http_connections(tmp_path: Path) -> None:
    """A connection that became a WebSocket stream leaves the count: after 3 streams, one
    keep-alive client against another worker's 0 is at its share (1 of 1) and kept."""
    peer, env = _served_beside_a_peer(tmp_path)

    async def streams(url: str) -> None:
        url = url.replace("http://", "ws://") + "/v1/models/fan/stream"
        opened = [await websockets.connect(url) for _ in range(3)]
        await asyncio.sleep(0.6)  # counted in an exchange while open
        for stream in opened:
            await stream.close()

    with serve_process(tmp_path / "models", tmp_path / "serve.log", env=env) as served:
        asyncio.run(streams(served.url))
        time.sleep(0.5)
        peer.write_text("0")
        closes, answers = _connection_closes(served.url, 1, 1.5)
    assert closes == 0, (closes, answers)

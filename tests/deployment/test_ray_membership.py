"""The replica directory's logic and a replica's side of reloads, without Ray: the Membership the
Serve deployment holds, called in-process, and real registries on one shared models folder."""

from __future__ import annotations

import asyncio
from pathlib import Path

from service.metrics import Metrics
from service.ray_serve.membership import Membership, ReplicaReport
from service.ray_serve.replica_sync import RayReplicaSync, ReplicaIdentity
from service.registry import ModelRegistry
from tests.service.clips import small_audio_bundle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class InProcessDirectory:
    """Membership called directly, as the Serve deployment calls it for each handle call."""

    def __init__(self, membership: Membership) -> None:
        self.membership = membership

    async def heartbeat(self, report: ReplicaReport) -> int:
        return self.membership.heartbeat(report)

    async def begin_reload(self) -> int:
        return self.membership.begin_reload()

    async def members(self) -> list[ReplicaReport]:
        return self.membership.members()

    def leave(self, replica: str) -> None:
        self.membership.leave(replica)


def _report(replica: str, generation: int | None = None) -> ReplicaReport:
    return ReplicaReport(replica=replica, pid=1, node="127.0.0.1", generation=generation)


def test_a_replica_not_heard_from_within_the_timeout_is_dropped() -> None:
    clock = Clock()
    membership = Membership(timeout_seconds=3.0, clock=clock)
    membership.heartbeat(_report("a"))
    membership.heartbeat(_report("b"))
    clock.now = 2.0
    membership.heartbeat(_report("a"))
    clock.now = 3.0
    assert [m.replica for m in membership.members()] == ["a", "b"]
    clock.now = 3.5
    assert [m.replica for m in membership.members()] == ["a"]


def test_a_replica_that_leaves_is_dropped_at_once() -> None:
    membership = Membership(timeout_seconds=3.0, clock=Clock())
    membership.heartbeat(_report("a"))
    membership.leave("a")
    assert membership.members() == []


def test_generations_rise_even_across_a_restarted_directory() -> None:
    first = Membership(timeout_seconds=3.0)
    issued = [first.begin_reload(), first.begin_reload()]
    assert issued[1] > issued[0]
    restarted = Membership(timeout_seconds=3.0)
    assert restarted.generation == 0  # replicas that acted on `issued` are not asked again
    assert restarted.begin_reload() > issued[1]


def _sync(
    models: Path, directory: InProcessDirectory, replica: str, *, wait_seconds: float = 10.0
) -> RayReplicaSync:
    return RayReplicaSync(
        ModelRegistry(models, Metrics()),
        directory,
        ReplicaIdentity(replica, 1, "127.0.0.1"),
        poll_seconds=0.02,
        wait_seconds=wait_seconds,
    )


def test_a_reload_returns_once_every_live_replica_serves_the_new_version(
    tmp_path: Path,
) -> None:
    small_audio_bundle(tmp_path / "fan-1", name="fan", version="1")
    directory = InProcessDirectory(Membership(timeout_seconds=5.0))
    leader, follower = _sync(tmp_path, directory, "a"), _sync(tmp_path, directory, "b")

    async def scenario() -> None:
        following = [asyncio.create_task(s.run()) for s in (leader, follower)]
        while (
            not all(m.models for m in directory.membership.members())
            or len(directory.membership.members()) < 2
        ):
            await asyncio.sleep(0.01)
        small_audio_bundle(tmp_path / "fan-2", name="fan", version="2")
        outcome = await leader.reload()
        # The follower serves version 2 when the reload answers, not one poll later.
        assert follower.report().models == {"fan": "2"}
        assert [(w.models, reloaded) for w, reloaded in outcome.workers] == [
            ({"fan": "2"}, True),
            ({"fan": "2"}, True),
        ]
        for task in following:
            task.cancel()

    asyncio.run(scenario())


def test_a_reload_stops_waiting_for_a_replica_that_is_gone(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "fan-1", name="fan", version="1")
    directory = InProcessDirectory(Membership(timeout_seconds=1.0))
    leader = _sync(tmp_path, directory, "a", wait_seconds=30.0)

    async def scenario() -> None:
        following = asyncio.create_task(leader.run())
        while not leader.report().models:
            await asyncio.sleep(0.01)
        # Heard from once, then killed: it never acts on the reload.
        directory.membership.heartbeat(_report("gone"))
        outcome = await leader.reload()
        assert [(w.models, reloaded) for w, reloaded in outcome.workers] == [({"fan": "1"}, True)]
        following.cancel()

    asyncio.run(scenario())

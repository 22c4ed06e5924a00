"""Workers sharing a sync folder: a reload asked of one is acted on by all, the answer says what
each serves, and the traces of dead workers are cleared."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.metrics import MULTIPROC_ENV, Metrics
from service.registry import ModelRegistry
from service.worker_sync import SYNC_DIR_ENV, WorkerSync, worker_sync_folder
from tests.service.clips import small_audio_bundle

FAST = {"poll_seconds": 0.02, "wait_seconds": 10.0}


def _sync(models: Path, folder: Path | None, **timing: float) -> WorkerSync:
    return WorkerSync(ModelRegistry(models, Metrics()), folder, **{**FAST, **timing})


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_reload_in_one_worker_is_acted_on_by_the_others(tmp_path: Path) -> None:
    models, folder = tmp_path / "models", tmp_path / "sync"
    small_audio_bundle(models / "fan-1", name="fan", version="1")
    follower_models = ModelRegistry(models, Metrics())
    asking = _sync(models, folder)
    following = WorkerSync(follower_models, folder, **FAST)

    async def scenario() -> tuple[list[tuple[int | None, dict[str, str], bool]], str | None]:
        runner = asyncio.create_task(following.run())
        await asyncio.sleep(0.5)  # the follower loads version 1 and says so
        small_audio_bundle(models / "fan-2", name="fan", version="2")
        outcome = await asyncio.wait_for(asking.reload(), timeout=30)
        runner.cancel()
        served = follower_models.get("fan")
        seen = [(s.generation, s.models, acted) for s, acted in outcome.workers]
        return seen, served.version if served else None

    workers, follower_serves = asyncio.run(scenario())
    assert follower_serves == "2"
    assert len(workers) == 2
    assert [(models_, acted) for _, models_, acted in workers] == [({"fan": "2"}, True)] * 2
    assert workers[0][0] == workers[1][0]  # one generation, acted on by both


def test_the_answer_says_which_worker_had_not_reloaded_in_time(tmp_path: Path) -> None:
    models, folder = tmp_path / "models", tmp_path / "sync"
    small_audio_bundle(models / "fan", name="fan")
    asking = _sync(models, folder, wait_seconds=0.3)
    # A live worker (this very process) that announced itself and never follows the folder.
    silent = folder / "workers" / "silent.json"
    silent.parent.mkdir(parents=True)
    silent.write_text(json.dumps({"pid": os.getpid(), "generation": None, "models": {}}))
    outcome = asyncio.run(asking.reload())
    assert sorted(acted for _, acted in outcome.workers) == [False, True]


def test_dead_workers_are_forgotten_with_their_live_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models, folder, metrics = tmp_path / "models", tmp_path / "sync", tmp_path / "metrics"
    models.mkdir()
    metrics.mkdir()
    dead, alive = _dead_pid(), os.getpid()
    (folder / "workers").mkdir(parents=True)
    record = {"pid": dead, "generation": 1, "models": {"fan": "1"}}
    (folder / "workers" / f"{dead}-x.json").write_text(json.dumps(record))
    for pid in (dead, alive):
        (metrics / f"gauge_livemax_{pid}.db").write_bytes(b"")
        (metrics / f"counter_{pid}.db").write_bytes(b"")
    monkeypatch.setenv(MULTIPROC_ENV, str(metrics))
    outcome = asyncio.run(_sync(models, folder).reload())
    assert [status.pid for status, _ in outcome.workers] == [alive]
    assert not (folder / "workers" / f"{dead}-x.json").exists()
    # Its model_info would otherwise count forever; its counters still add to the totals.
    assert sorted(p.name for p in metrics.iterdir()) == sorted(
        [f"counter_{dead}.db", f"counter_{alive}.db", f"gauge_livemax_{alive}.db"]
    )


def test_a_lost_generation_file_never_makes_a_reload_look_old(tmp_path: Path) -> None:
    models, folder = tmp_path / "models", tmp_path / "sync"
    models.mkdir()
    first = WorkerSync._raise_generation(folder)
    (folder / "generation").unlink()
    assert WorkerSync._raise_generation(folder) > first


def test_a_lost_status_file_is_written_again_and_withdrawn_on_close(tmp_path: Path) -> None:
    models, folder = tmp_path / "models", tmp_path / "sync"
    models.mkdir()
    worker = _sync(models, folder)

    async def follow_briefly(seconds: float) -> None:
        runner = asyncio.create_task(worker.run())
        await asyncio.sleep(seconds)
        runner.cancel()

    asyncio.run(follow_briefly(0.2))
    [status] = (folder / "workers").iterdir()
    status.unlink()
    asyncio.run(follow_briefly(0.2))
    assert status.exists()
    worker.close()
    assert not status.exists()


def test_without_a_folder_a_reload_is_this_process_alone(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "fan", name="fan")
    outcome = asyncio.run(_sync(tmp_path, None).reload())
    [(status, acted)] = outcome.workers
    assert (status.pid, status.models, acted) == (os.getpid(), {"fan": "1"}, True)


def test_serve_gets_a_fresh_sync_folder_removed_afterwards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SYNC_DIR_ENV, raising=False)
    with worker_sync_folder() as given:
        assert os.environ[SYNC_DIR_ENV] == given
    assert not Path(given).exists()
    assert SYNC_DIR_ENV not in os.environ

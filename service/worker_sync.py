"""Reloads that reach every worker process of one server. The workers share a folder: a reload
raises the generation number kept there, each worker polls it and reloads when it rises, and
each worker keeps a status file saying which generation it has acted on and what it serves."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from service.metrics import multiprocess_dir
from service.run_folders import alive, shared_run_folder, worker_file, write_atomically

if TYPE_CHECKING:  # `auscult serve` imports this module before any worker loads ONNX Runtime
    from service.registry import ModelRegistry, RefreshReport

logger = logging.getLogger(__name__)

SYNC_DIR_ENV = "AUSCULT_WORKER_SYNC_DIR"
_GENERATION_FILE = "generation"
_LOCK_FILE = "generation.lock"
_WORKERS_DIR = "workers"


@dataclass(frozen=True)
class WorkerStatus:
    """What one worker serves, and the last reload generation it has acted on (None while its
    first load is under way)."""

    pid: int
    generation: int | None
    models: dict[str, str]  # model name -> version

    def has_acted_on(self, generation: int) -> bool:
        return self.generation is not None and self.generation >= generation


@dataclass(frozen=True)
class ReloadOutcome:
    report: RefreshReport  # what this worker's own refresh did
    workers: list[tuple[WorkerStatus, bool]]  # and whether each has acted on this reload


class ReloadSync(Protocol):
    """How a reload reaches every process serving one app: WorkerSync for the workers of one
    `auscult serve`, service/ray_serve/replica_sync.py for Ray Serve replicas."""

    async def run(self) -> None:
        """Follow reloads asked of other processes until cancelled."""

    async def reload(self) -> ReloadOutcome:
        """Reload here, ask every other process to, and say which of them have."""

    def close(self) -> None:
        """Leave, so that reloads stop waiting for this process."""


def _read_generation(folder: Path) -> int:
    try:
        return int((folder / _GENERATION_FILE).read_text(encoding="ascii"))
    except (OSError, ValueError):
        return 0  # no reload asked yet, or the file was lost: the next one starts above it


def _forget_dead_worker_gauges(pid: int) -> None:
    """Drop a dead worker's live gauge files, which prometheus-client only removes when a worker
    stops cleanly: a crashed worker would otherwise keep `auscult_model_info` at 1 for the
    version it served."""
    directory = multiprocess_dir()
    if directory is None:
        return
    for path in Path(directory).glob(f"gauge_live*_{pid}.db"):
        path.unlink(missing_ok=True)


class WorkerSync:
    """One worker's side of the shared folder; with no folder (one process, or an app in a
    test) a reload is this process's refresh alone."""

    def __init__(
        self,
        registry: ModelRegistry,
        folder: Path | None,
        *,
        poll_seconds: float,
        wait_seconds: float,
    ) -> None:
        self._registry = registry
        self._folder = folder
        self._poll_seconds = poll_seconds
        self._wait_seconds = wait_seconds
        self._status_file = (
            worker_file(folder, _WORKERS_DIR, ".json") if folder is not None else None
        )
        self._acted_on: int | None = None
        self._published: WorkerStatus | None = None

    def status(self) -> WorkerStatus:
        served = {model.name: model.version for model in self._registry.served()}
        return WorkerStatus(os.getpid(), self._acted_on, served)

    async def run(self) -> None:
        """Follow the shared folder until cancelled: reload when another worker asked for it,
        and keep this worker's status file current."""
        if self._folder is None:
            return
        while True:
            try:
                await self._catch_up(self._folder)
            except Exception:  # a failed round must never stop the following ones
                logger.exception("following reloads in %s failed", self._folder)
            await asyncio.sleep(self._poll_seconds)

    async def _catch_up(self, folder: Path) -> None:
        # In a thread: on the event loop, every file call gives up the GIL and then waits for a
        # busy scoring thread to hand it back (up to the 5 ms switch interval each), which held
        # up every request of the worker several times a second.
        await asyncio.to_thread(self._catch_up_in_thread, folder)

    def _catch_up_in_thread(self, folder: Path) -> None:
        if self._published is None:
            # Announced before the first load, so a reload meanwhile waits for this worker too.
            self._publish()
        generation = _read_generation(folder)
        if self._acted_on is None or generation > self._acted_on:
            # Read before the refresh: the refresh then scans files at least as new as the
            # ones the reload was asked for.
            self._registry.refresh()
            self._acted_on_up_to(generation)
        self._publish_if_changed()
        self._prune_dead_workers(folder)

    async def reload(self) -> ReloadOutcome:
        """Refresh this worker, ask every other to, and wait (at most `wait_seconds`) until each
        live worker has acted on it."""
        if self._folder is None:
            report = await asyncio.to_thread(self._registry.refresh)
            return ReloadOutcome(report, [(self.status(), True)])
        folder = self._folder
        generation = await asyncio.to_thread(self._raise_generation, folder)
        report = await asyncio.to_thread(self._registry.refresh)
        self._acted_on_up_to(generation)
        # The files in threads, as in the poll: the other requests of this worker go on.
        await asyncio.to_thread(self._publish)
        deadline = time.monotonic() + self._wait_seconds
        while True:
            workers = await asyncio.to_thread(self._prune_dead_workers, folder)
            behind = [w.pid for w in workers if not w.has_acted_on(generation)]
            if not behind or time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(self._poll_seconds, 0.05))
        if behind:
            logger.warning(
                "workers %s had not reloaded %s s after a reload request",
                behind,
                self._wait_seconds,
            )
        return ReloadOutcome(report, [(w, w.has_acted_on(generation)) for w in workers])

    def _acted_on_up_to(self, generation: int) -> None:
        # Never backwards: a reload and the poll may finish in either order.
        self._acted_on = generation if self._acted_on is None else max(generation, self._acted_on)

    def close(self) -> None:
        """Withdraw this worker's status file, so reloads stop waiting for it."""
        if self._status_file is not None:
            self._status_file.unlink(missing_ok=True)

    @staticmethod
    def _raise_generation(folder: Path) -> int:
        """The next generation, above every earlier one even if the file was lost (then the
        clock is above them), under a lock so concurrent reloads each get their own."""
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / _LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            generation = max(_read_generation(folder) + 1, time.time_ns())
            write_atomically(folder / _GENERATION_FILE, str(generation))
        return generation

    def _publish_if_changed(self) -> None:
        assert self._status_file is not None
        # Re-written when lost too (a /tmp cleaner), or reloads would stop waiting for it.
        if self.status() != self._published or not self._status_file.exists():
            self._publish()

    def _publish(self) -> None:
        assert self._status_file is not None
        status = self.status()
        self._status_file.parent.mkdir(parents=True, exist_ok=True)
        record = {"pid": status.pid, "generation": status.generation, "models": status.models}
        write_atomically(self._status_file, json.dumps(record))
        self._published = status

    def _prune_dead_workers(self, folder: Path) -> list[WorkerStatus]:
        """Every live worker's status, ordered by pid; the files of dead ones are removed."""
        workers = []
        for path in sorted((folder / _WORKERS_DIR).glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                status = WorkerStatus(int(record["pid"]), record["generation"], record["models"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # removed meanwhile, or not a status file
            if alive(status.pid):
                workers.append(status)
            else:
                path.unlink(missing_ok=True)
                _forget_dead_worker_gauges(status.pid)
        return sorted(workers, key=lambda w: w.pid)


@contextlib.contextmanager
def worker_sync_folder() -> Iterator[str]:
    """The folder the workers of one `auscult serve` share: the one given in
    AUSCULT_WORKER_SYNC_DIR (cleared of old status files) or a fresh temporary folder removed
    afterwards."""
    with shared_run_folder(SYNC_DIR_ENV, "auscult-workers-", f"{_WORKERS_DIR}/*.json") as folder:
        yield folder

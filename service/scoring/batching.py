"""Micro-batching of stream work: the blocks that different streams complete at about the same
moment go through their model in one call, their analysis windows through one FFT and mel
projection, and all their frames cross to a worker thread in one hop, instead of one pool job
(and one ONNX call, one FFT call) per frame per stream.

A stream submits one job at a time (its state must advance in order) and awaits its result;
jobs that arrive while the batch threads are busy, or within `max_wait_s` of the first, form
the next batch. A job runs in steps in the batch thread: `prepare` does the per-stream work
(decoding) and returns either the blocks it wants scored (`ModelWork`) or, one step earlier,
the analysis windows it wants turned into log-mel frames (`FeatureWork`, whose `then` gets its
frames and returns its blocks); once every job's blocks have gone through their model in one
call per model, `finish` turns the job's slice of the scores into its result. Streams never
wait in the request pool's queue and are never refused by it: a busy server makes each batch
larger and the streams' lag longer, and the per-connection buffers (service/api/streams/)
push back on clients that send faster than that."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from service.features.logmel import LogMelExtractor
from service.metrics import Metrics
from service.scoring.audio import AudioScorer
from service.thread_priority import lowered_threads

T = TypeVar("T")

# How long the first job of a batch waits for others: short against a 100 ms frame, long
# against the ~50 us a thread hop costs, so that streams paced alike share their hops.
DEFAULT_MAX_WAIT_S = 0.002
# Jobs per batch at most; past this the batch starts at once.
DEFAULT_MAX_JOBS = 512


@dataclass(frozen=True)
class ModelWork(Generic[T]):
    """What `prepare` returns: blocks for `scorer` (none: `scorer` may be None), and how the
    job's result is made from their scores (n_blocks,) and band errors (n_blocks, n_mels)."""

    scorer: AudioScorer | None
    blocks: np.ndarray | None
    finish: Callable[[np.ndarray, np.ndarray], T]

    @classmethod
    def done(cls, result: T) -> ModelWork[T]:
        """A job whose work needed no shared model call."""
        return cls(None, None, lambda _scores, _bands: result)


@dataclass(frozen=True)
class FeatureWork(Generic[T]):
    """What `prepare` may return instead: analysis windows (k, n_fft) for `extractor`, and
    how their log-mel frames (n_mels, k) become the job's ModelWork."""

    extractor: LogMelExtractor
    windows: np.ndarray
    then: Callable[[np.ndarray], ModelWork[T]]


Prepared = ModelWork[T] | FeatureWork[T]


@dataclass
class _Job:
    prepare: Callable[[], Prepared[Any]]
    future: asyncio.Future[Any]


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class StreamBatcher:
    """Runs stream jobs in batches on `threads` threads of its own."""

    def __init__(
        self,
        threads: int,
        *,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        max_jobs: int = DEFAULT_MAX_JOBS,
        name: str = "auscult-stream",
        nice: int = 0,
        metrics: Metrics | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {max_jobs}")
        self.threads = threads
        self.max_wait_s = max_wait_s
        self.max_jobs = max_jobs
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=name, initializer=lowered_threads(nice)
        )
        self._pending: list[_Job] = []
        self._running = 0  # batches in the threads
        self._timer: asyncio.TimerHandle | None = None
        # What batching achieved, for tests and profiling; written by the batch threads.
        self._lock = threading.Lock()
        self.batches = 0
        self.jobs = 0
        self.model_calls = 0
        self.largest_batch = 0

    async def run(self, prepare: Callable[[], Prepared[T]]) -> T:
        """The job's result once its batch has run; its exception if it raised one."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Job(prepare, future))
        if len(self._pending) >= self.max_jobs:
            self._start_batch(loop)
        elif self._timer is None and len(self._pending) == 1:
            self._timer = loop.call_later(self.max_wait_s, self._start_batch, loop)
        return await future

    def _start_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending or self._running >= self.threads:
            return  # the batch that ends next starts this one, larger
        jobs, self._pending = self._pending[: self.max_jobs], self._pending[self.max_jobs :]
        try:
            done = loop.run_in_executor(self._executor, self._run_batch, [j.prepare for j in jobs])
        except RuntimeError as exc:  # shut down: the server is stopping
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self._running += 1
        done.add_done_callback(lambda ended: self._batch_ended(loop, jobs, ended))

    def _batch_ended(
        self, loop: asyncio.AbstractEventLoop, jobs: list[_Job], ended: asyncio.Future[list[Any]]
    ) -> None:
        self._running -= 1
        error = None if ended.cancelled() else ended.exception()
        results: list[Any] = (
            [_Failed(error or RuntimeError("batch cancelled"))] * len(jobs)
            if ended.cancelled() or error is not None
            else ended.result()
        )
        for job, result in zip(jobs, results, strict=True):
            if job.future.done():  # its stream went away meanwhile
                continue
            if isinstance(result, _Failed):
                job.future.set_exception(result.error)
            else:
                job.future.set_result(result)
        if self._pending:
            self._start_batch(loop)

    def _run_batch(self, prepares: list[Callable[[], Prepared[Any]]]) -> list[Any]:
        """In a batch thread: every job's own work, one spectrum call per feature settings,
        one model call per model, the results."""
        results: list[Any] = [None] * len(prepares)
        prepared: dict[int, Prepared[Any]] = {}
        for i, prepare in enumerate(prepares):
            try:
                prepared[i] = prepare()
            except Exception as exc:  # one stream's bad frame fails that stream alone
                results[i] = _Failed(exc)
        works = self._features_together(prepared, results)
        by_model: dict[int, list[int]] = {}
        for i, work in works.items():
            by_model.setdefault(id(work.scorer), []).append(i)
        calls = 0
        for members in by_model.values():
            calls += self._score_together([(i, works[i]) for i in members], results)
        with self._lock:
            self.batches += 1
            self.jobs += len(prepares)
            self.model_calls += calls
            self.largest_batch = max(self.largest_batch, len(prepares))
        return results

    def _features_together(
        self, prepared: dict[int, Prepared[Any]], results: list[Any]
    ) -> dict[int, ModelWork[Any]]:
        """Turn the windows of every FeatureWork into frames, one call per extractor, and
        each job's frames into its ModelWork."""
        works = {i: p for i, p in prepared.items() if isinstance(p, ModelWork)}
        by_extractor: dict[int, list[tuple[int, FeatureWork[Any]]]] = {}
        for i, p in prepared.items():
            if isinstance(p, FeatureWork):
                by_extractor.setdefault(id(p.extractor), []).append((i, p))
        for members in by_extractor.values():
            windows = np.concatenate([p.windows for _, p in members])
            try:
                frames = self._frames(members[0][1].extractor, windows)
            except Exception as exc:
                for i, _ in members:
                    results[i] = _Failed(exc)
                continue
            start = 0
            for i, p in members:
                stop = start + len(p.windows)
                try:
                    works[i] = p.then(frames[:, start:stop])
                except Exception as exc:
                    results[i] = _Failed(exc)
                start = stop
        return works

    def _frames(self, extractor: LogMelExtractor, windows: np.ndarray) -> np.ndarray:
        if self._metrics is None:
            return extractor.frames_of_windows(windows)
        with self._metrics.time_stage("features"):
            return extractor.frames_of_windows(windows)

    def _score_together(self, members: list[tuple[int, ModelWork[Any]]], results: list[Any]) -> int:
        """Score the blocks of jobs for one model in one call and hand each its slice; the
        number of model calls made (0 or 1)."""
        scorer = members[0][1].scorer
        sizes = [0 if w.blocks is None else len(w.blocks) for _, w in members]
        total = sum(sizes)
        calls = 0
        if scorer is not None and total:
            blocks = np.concatenate([w.blocks for _, w in members if w.blocks is not None])
            try:
                scores, bands = self._score(scorer, blocks)
            except Exception as exc:
                for i, _ in members:
                    results[i] = _Failed(exc)
                return 1
            calls = 1
        else:
            scores = np.empty(0, dtype=np.float32)
            bands = np.empty((0, 0), dtype=np.float32)
        start = 0
        for (i, work), size in zip(members, sizes, strict=True):
            stop = start + size
            try:
                results[i] = work.finish(scores[start:stop], bands[start:stop])
            except Exception as exc:
                results[i] = _Failed(exc)
            start = stop
        return calls

    def _score(self, scorer: AudioScorer, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._metrics is None:
            return scorer.score_blocks(blocks)
        with self._metrics.time_stage("model"):
            return scorer.score_blocks(blocks)

    def shutdown(self) -> None:
        """Finish the batches already running, then stop the threads."""
        self._executor.shutdown(wait=True)

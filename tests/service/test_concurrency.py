"""The bounded pool refuses work at once when full and frees a slot only when a job ends; it
times its jobs and tells how long new work would wait."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable

import pytest

from service.concurrency import SERVICE_TIME_WEIGHT, BoundedPool, PoolFullError
from tests.service.priorities import linux_only, lowered, priority_of


def test_a_full_pool_refuses_at_once_and_accepts_again_once_a_job_ends() -> None:
    async def scenario() -> None:
        pool = BoundedPool(threads=1, queue_limit=1)
        release = threading.Event()
        running = [asyncio.ensure_future(pool.run(release.wait, 10.0)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert pool.in_flight == 2
        with pytest.raises(PoolFullError, match="all 2 scoring slots are busy"):
            await pool.run(sum, [1, 2])
        release.set()
        assert await asyncio.gather(*running) == [True, True]
        assert await pool.run(sum, [1, 2]) == 3
        assert pool.in_flight == 0
        pool.shutdown()

    asyncio.run(scenario())


def test_a_cancelled_caller_keeps_its_slot_until_the_job_finishes() -> None:
    async def scenario() -> None:
        pool = BoundedPool(threads=1, queue_limit=0)
        release = threading.Event()
        waiter = asyncio.ensure_future(pool.run(release.wait, 10.0))
        await asyncio.sleep(0.05)
        waiter.cancel()
        await asyncio.sleep(0.05)
        # The thread is still busy with the abandoned job: the pool is still full.
        with pytest.raises(PoolFullError):
            await pool.run(sum, [1])
        release.set()
        await asyncio.sleep(0.05)
        assert await pool.run(sum, [1]) == 1
        pool.shutdown()

    asyncio.run(scenario())


def test_errors_in_jobs_reach_the_caller_and_free_the_slot() -> None:
    async def scenario() -> None:
        pool = BoundedPool(threads=1, queue_limit=0)
        with pytest.raises(ZeroDivisionError):
            await pool.run(divmod, 1, 0)
        assert pool.in_flight == 0
        pool.shutdown()

    asyncio.run(scenario())


def _clock(*readings: float) -> Callable[[], float]:
    """A clock that reads the given times in turn: each job reads it when it starts and ends."""
    return functools.partial(next, iter(readings))


def test_the_service_time_is_a_moving_average_of_job_durations() -> None:
    async def scenario() -> None:
        # Jobs of 1 s, then 3 s: the first sets the average, the next moves it by a tenth.
        pool = BoundedPool(threads=1, queue_limit=4, clock=_clock(0.0, 1.0, 10.0, 13.0))
        assert pool.service_seconds == 0.0
        await pool.run(sum, [1])
        assert pool.service_seconds == 1.0
        await pool.run(sum, [1])
        assert pool.service_seconds == pytest.approx(1.0 + SERVICE_TIME_WEIGHT * 2.0)
        pool.shutdown()

    asyncio.run(scenario())


def test_the_expected_wait_and_retry_after_follow_the_backlog() -> None:
    async def scenario() -> None:
        # Every job lasts 1.5 s by this clock.
        readings = [1.5 * step for step in range(100)]
        pool = BoundedPool(threads=2, queue_limit=16, clock=_clock(*readings))
        assert (pool.expected_wait(), pool.retry_after()) == (0.0, 1)  # nothing known yet
        await pool.run(sum, [1])
        release = threading.Event()
        # A thread is free: a new job would start at once.
        jobs = [asyncio.ensure_future(pool.run(release.wait, 10.0))]
        await asyncio.sleep(0.05)
        assert pool.expected_wait() == 0.0
        assert pool.retry_after() == 1  # 1 job of 1.5 s on 2 threads: 0.75 s, rounded up
        # Both threads busy: a new job waits for one of them.
        jobs.append(asyncio.ensure_future(pool.run(release.wait, 10.0)))
        await asyncio.sleep(0.05)
        assert pool.expected_wait() == pytest.approx(1.5 / 2)
        assert pool.retry_after() == 2  # 2 jobs of 1.5 s on 2 threads
        # Three more wait: the next waits for those three and one running, on two threads.
        jobs += [asyncio.ensure_future(pool.run(release.wait, 10.0)) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert pool.in_flight == 5
        assert pool.expected_wait() == pytest.approx(1.5 * 4 / 2)
        assert pool.retry_after() == 4  # 5 jobs of 1.5 s on 2 threads: 3.75 s
        # Requests admitted but still reading their bodies count as work ahead.
        assert pool.expected_wait(ahead=2) == pytest.approx(1.5 * 6 / 2)
        assert pool.retry_after(ahead=2) == 6  # 5.25 s
        release.set()
        await asyncio.gather(*jobs)
        pool.shutdown()

    asyncio.run(scenario())


@linux_only
def test_the_workers_run_nice_below_the_thread_that_starts_them() -> None:
    base = priority_of()
    pool = BoundedPool(threads=1, queue_limit=0, nice=4)
    try:
        assert asyncio.run(pool.run(priority_of)) == lowered(base, 4)
    finally:
        pool.shutdown()
    assert priority_of() == base

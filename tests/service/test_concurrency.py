"""The bounded pool refuses work at once when full and frees a slot only when a job ends."""

from __future__ import annotations

import asyncio
import threading

import pytest

from service.concurrency import BoundedPool, PoolFullError


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

"""The arq queue as the bench sees it: jobs due now (sends), and waiting for the worker to drain them."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from orchestrator.engine.jobs import QUEUE

from .procs import BenchError, Procs

__all__ = ["drain", "due_jobs"]


async def due_jobs(redis: Redis) -> int:
    """Jobs whose time has come and that no worker has finished yet (timeouts lie 900 s ahead)."""
    return int(await redis.zcount(QUEUE, "-inf", int(time.time() * 1000)))


async def drain(redis: Redis, procs: Procs, timeout_s: float = 180.0) -> dict[str, float | int]:
    """Wait until the worker has run every due job; report the backlog and how long it took."""
    t0 = time.perf_counter()
    backlog = await due_jobs(redis)
    remaining = backlog
    while remaining:
        procs.check_alive()
        if time.perf_counter() - t0 > timeout_s:
            raise BenchError(f"worker did not drain {remaining} due jobs in {timeout_s:.0f}s")
        await asyncio.sleep(0.05)
        remaining = await due_jobs(redis)
    return {"backlog": backlog, "drain_s": round(time.perf_counter() - t0, 3)}

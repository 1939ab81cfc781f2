"""A Redis outage in the middle of a job makes arq run the job again instead of dropping it.

arq finishes (deletes) a job whose function raised; if Redis came back by then, a send or a
webhook delivery cut short by the outage would be lost for good. The worker's job functions
turn Redis connection errors into arq's Retry, with a back-off that grows with the try."""

from __future__ import annotations

from typing import Any

import pytest
from arq.worker import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workers.settings import _outage_retried


@pytest.mark.parametrize("error", [RedisConnectionError("gone"), RedisTimeoutError("slow")])
async def test_redis_outage_mid_job_is_retried(error: Exception) -> None:
    calls: list[tuple[Any, ...]] = []

    async def job(ctx: dict[str, Any], *args: Any) -> None:
        calls.append(args)
        raise error

    with pytest.raises(Retry) as raised:
        await _outage_retried(job)({"job_try": 2}, "rid", 0)
    assert calls == [("rid", 0)]
    assert raised.value.defer_score == 4000  # 2 ** job_try seconds, capped at 30


async def test_other_failures_are_not_retried() -> None:
    async def job(ctx: dict[str, Any]) -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        await _outage_retried(job)({"job_try": 1})

"""Sends per second through the SMPP provider (into Net::SMPP's SMSC, bench/smpp.py) next to
the sandbox provider (into the bench's Redis), both with 10 sends in flight, in one run.

The ratio is the figure to read: both rates run in this process, on the same machine in the
same minute, so a busy neighbour slows both. The sandbox is measured before and after the SMPP
run and the ratio uses the mean of the two.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from orchestrator import constants
from tests.support.smsc import unavailable
from workers.channels.base import OutboundMessage
from workers.providers.sandbox import SandboxProvider

from .smpp import sends_per_second

__all__ = ["provider_sends"]

_TENANT = "bench-providers"


def _message(i: int) -> OutboundMessage:
    return OutboundMessage(
        id=f"benchp{i}:0",
        tenant=_TENANT,
        request_id=f"benchp{i}",
        channel="sms",
        to=f"4477009{i % 10**5:05d}0",
        sender="ACME",
        text=f"Your ACME code is {i % 10**6:06d}",
        code=f"{i % 10**6:06d}",
        locale="en-us",
    )


async def _sandbox_rate(redis: Redis, n: int, window: int) -> float:
    provider = SandboxProvider(redis)
    slots = asyncio.Semaphore(window)

    async def one(i: int) -> None:
        async with slots:
            await provider.send(_message(i))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    rate = n / (time.perf_counter() - t0)
    keys = [k async for k in redis.scan_iter(match=f"{constants.OUTBOX_PREFIX}{_TENANT}:*")]
    if keys:
        await redis.delete(*keys)
    return rate


async def provider_sends(redis: Redis, n: int, window: int = 10) -> dict[str, object]:
    missing = unavailable()
    if missing is not None:
        return {"error": f"not measured: {missing}"}
    before = await _sandbox_rate(redis, n, window)
    smpp = await sends_per_second(n, window)
    after = await _sandbox_rate(redis, n, window)
    sandbox = (before + after) / 2
    return {
        "n": n,
        "window": window,
        "smpp_sends_per_s": round(smpp, 1),
        "sandbox_sends_per_s": round(sandbox, 1),
        "sandbox_before_after": [round(before, 1), round(after, 1)],
        "smpp_to_sandbox": round(smpp / sandbox, 3),
    }

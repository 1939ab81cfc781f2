"""Start-to-outbox latency at LOW load: sequential starts, each timed until its SMS is in the outbox.

The bench subscribes to keyspace notifications of the outbox lists before sending anything, so the
arrival of each message is observed as Redis publishes it, without polling.
"""

from __future__ import annotations

import asyncio
import json
import time

from redis.asyncio import Redis

from orchestrator.constants import OUTBOX_PREFIX

from .client import VerifyClient
from .numbers import Numbers
from .procs import BenchError
from .stats import summary_ms

__all__ = ["start_to_outbox"]

WAIT_S = 5.0
GIVE_UP_AFTER = 3  # consecutive starts without an outbox write: something is broken, stop
_KEYSPACE = "__keyspace@0__:"


async def start_to_outbox(
    api: VerifyClient, redis: Redis, numbers: Numbers, n: int
) -> dict[str, object]:
    """`n` sequential starts; after each, check the code read from the outbox (expects 200).

    Outbox keys are `vo:outbox:<tenant>:<digits>`; which id the tenant part is (application,
    account) is the product's business, so an arrival is matched on the destination digits alone,
    which are unique in a run.
    """
    pubsub = redis.pubsub()
    await pubsub.psubscribe(f"{_KEYSPACE}{OUTBOX_PREFIX}*")
    waiters: dict[str, asyncio.Future[tuple[float, str]]] = {}

    async def listen() -> None:
        async for msg in pubsub.listen():
            if msg["type"] != "pmessage" or msg["data"] != b"lpush":
                continue
            arrived = time.perf_counter()
            key = msg["channel"].decode()[len(_KEYSPACE) :]
            fut = waiters.pop(key.rsplit(":", 1)[-1], None)
            if fut is not None and not fut.done():
                fut.set_result((arrived, key))

    listener = asyncio.create_task(listen())
    outbox_ms: list[float] = []
    http_ms: list[float] = []
    check_ms: list[float] = []
    problems: dict[str, int] = {}
    missed = 0

    def problem(label: str) -> None:
        problems[label] = problems.get(label, 0) + 1

    loop = asyncio.get_running_loop()
    try:
        for _ in range(n):
            to = numbers.next()
            fut: asyncio.Future[tuple[float, str]] = loop.create_future()
            waiters[to] = fut
            t0 = time.perf_counter()
            status, request_id = await api.start(to)
            http_ms.append((time.perf_counter() - t0) * 1000)
            if request_id is None:
                problem(f"start {status}")
                continue
            try:
                arrived, key = await asyncio.wait_for(fut, WAIT_S)
            except TimeoutError:
                problem("outbox timeout")
                missed += 1
                if missed >= GIVE_UP_AFTER:
                    raise BenchError(
                        f"no outbox LPUSH seen for {missed} starts in a row "
                        f"(pattern {OUTBOX_PREFIX}*:<digits>); is the worker sending?"
                    ) from None
                continue
            missed = 0
            outbox_ms.append((arrived - t0) * 1000)
            raw = await redis.lindex(key, 0)  # type: ignore[misc]
            code = str(json.loads(raw)["code"])
            t1 = time.perf_counter()
            checked = await api.check(request_id, code)
            check_ms.append((time.perf_counter() - t1) * 1000)
            if checked != 200:
                problem(f"check {checked}")
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    return {
        "start_to_outbox": summary_ms(outbox_ms),
        "start_http": summary_ms(http_ms),
        "check_right_code_http": summary_ms(check_ms),
        "problems": problems,
    }

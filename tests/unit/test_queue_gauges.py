"""The autoscaling gauges on the web /metrics (issue 14), against a real redis-server: backlog,
lag and deferred jobs from arq's queue, jobs in progress from the workers' own counts (kept by
the claim and the end writer, crash-safe by TTL), webhooks awaiting retry from the set that
deliver_webhook keeps, and the scrape itself (one round trip, no stale figures)."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis
from arq.utils import timestamp_ms
from arq.worker import Function, func
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.http import metrics as http_metrics
from orchestrator.http.keys import SERVICES
from orchestrator.metrics import QueueGauges
from orchestrator.settings import Settings
from workers import tasks
from workers.tasks import WorkerState
from workers.webhooks import Attempt
from workers.worker import WakeableWorker

QUEUE = "arq:queue"


def _pool(redis: Redis) -> ArqRedis:
    return ArqRedis(connection_pool=redis.connection_pool)


async def _noop(ctx: dict[str, Any]) -> None:
    return None


def _worker(redis: Redis, *functions: Function, max_jobs: int = 10) -> WakeableWorker:
    return WakeableWorker(
        functions=list(functions) or [func(_noop, name="noop")],
        redis_pool=_pool(redis),
        handle_signals=False,
        keep_result=0,
        max_jobs=max_jobs,
    )


async def test_an_empty_deployment_reads_all_zero(redis: Redis) -> None:
    assert await http_metrics.read_queue_gauges(redis) == QueueGauges(
        due=0,
        lag_seconds=0.0,
        wait_seconds=0.0,
        deferred=0,
        in_progress=0,
        workers=0,
        webhooks_awaiting_retry=0,
    )


async def test_backlog_lag_and_deferred_come_from_the_queue_scores(redis: Redis) -> None:
    now = 1_800_000_000_000
    await redis.zadd(QUEUE, {"old": now - 5000, "newer": now - 1000, "exactly-now": now})
    await redis.zadd(QUEUE, {"timeout": now + 60_000, "retry": now + 1})
    gauges = await http_metrics.read_queue_gauges(redis, now_ms=now)
    assert (gauges.due, gauges.deferred) == (3, 2)
    assert gauges.lag_seconds == pytest.approx(5.0)
    assert gauges.wait_seconds == pytest.approx(5.0)  # no worker holds any of them


async def test_wait_is_the_age_of_the_oldest_job_no_worker_holds(redis: Redis) -> None:
    """A slow provider holds jobs for seconds: the lag shows it, the wait does not, unless
    jobs queue behind the held ones (every slot taken)."""
    release = asyncio.Event()

    async def hold(ctx: dict[str, Any]) -> None:
        await release.wait()

    w = _worker(redis, func(hold, name="hold"), max_jobs=2)
    now = timestamp_ms()
    for i, age_ms in enumerate((9000, 7000, 4000, 1000)):
        await _pool(redis).enqueue_job("hold", _job_id=f"h-{i}")
        await redis.zadd(QUEUE, {f"h-{i}": now - age_ms})
    await w._run_claimed(await w._claim_jobs(2, 100, None))  # the two oldest
    gauges = await http_metrics.read_queue_gauges(redis, now_ms=now)
    assert (gauges.due, gauges.in_progress) == (4, 2)
    assert gauges.lag_seconds == pytest.approx(9.0)
    assert gauges.wait_seconds == pytest.approx(4.0)
    release.set()
    await asyncio.gather(*w.tasks.values())


async def test_lag_is_zero_when_only_deferred_jobs_wait(redis: Redis) -> None:
    now = 1_800_000_000_000
    await redis.zadd(QUEUE, {"timeout": now + 60_000})
    gauges = await http_metrics.read_queue_gauges(redis, now_ms=now)
    assert (gauges.due, gauges.deferred, gauges.lag_seconds, gauges.wait_seconds) == (0, 1, 0, 0)


async def test_jobs_in_progress_follow_claims_and_ends_of_a_real_worker(redis: Redis) -> None:
    release = asyncio.Event()

    async def hold(ctx: dict[str, Any]) -> None:
        await release.wait()

    w = _worker(redis, func(hold, name="hold"))
    for i in range(3):
        await _pool(redis).enqueue_job("hold", _job_id=f"hold-{i}")
    await w._run_claimed(await w._claim_jobs(10, 100, None))
    gauges = await http_metrics.read_queue_gauges(redis)
    assert (gauges.in_progress, gauges.workers, gauges.due) == (3, 1, 3)
    assert gauges.wait_seconds == 0  # all due jobs are held: none waits
    # the count lives as long as the jobs' own in-progress keys
    ttl = await redis.pttl(constants.WORKER_JOBS_PREFIX + w.worker_id)
    assert 0 < ttl <= w.in_progress_timeout_s * 1000

    release.set()
    await asyncio.gather(*w.tasks.values())
    gauges = await http_metrics.read_queue_gauges(redis)
    assert (gauges.in_progress, gauges.workers, gauges.due) == (0, 1, 0)


async def test_two_workers_counts_add_up_and_a_poll_with_nothing_due_keeps_them(
    redis: Redis,
) -> None:
    release = asyncio.Event()

    async def hold(ctx: dict[str, Any]) -> None:
        await release.wait()

    workers = [_worker(redis, func(hold, name="hold")) for _ in range(2)]
    for i in range(5):
        await _pool(redis).enqueue_job("hold", _job_id=f"hold-{i}")
    await workers[0]._run_claimed(await workers[0]._claim_jobs(2, 100, None))
    await workers[1]._run_claimed(await workers[1]._claim_jobs(10, 100, None))
    # a later poll that claims nothing sets the same count again (and refreshes its TTL)
    await workers[0]._claim_jobs(8, 100, None)
    gauges = await http_metrics.read_queue_gauges(redis)
    assert (gauges.in_progress, gauges.workers) == (5, 2)
    release.set()
    for w in workers:
        await asyncio.gather(*w.tasks.values())
    assert (await http_metrics.read_queue_gauges(redis)).in_progress == 0


async def test_a_killed_workers_count_goes_with_its_ttl_and_is_pruned(redis: Redis) -> None:
    """kill -9 writes nothing: the count's TTL ends it (read as 0 by the scrape at once), and
    the next claim of any worker drops it from the workers set."""
    dead = _worker(redis)
    dead.jobs_count_ttl_ms = 300  # (default: in_progress_timeout_s)
    await redis.zadd(QUEUE, {"a": timestamp_ms() - 10, "b": timestamp_ms() - 10})
    await dead._claim_jobs(10, 100, None)  # claims both, then "dies": never ends them
    assert (await http_metrics.read_queue_gauges(redis)).in_progress == 2
    await asyncio.sleep(0.6)
    gauges = await http_metrics.read_queue_gauges(redis)
    assert (gauges.in_progress, gauges.workers) == (0, 0)
    await redis.zadd(constants.WORKERS_SET, {"long-gone": timestamp_ms() - 86_400_000})
    alive = _worker(redis)
    await alive._claim_jobs(10, 100, ["none"])
    # dropped once its count expired a TTL ago (by the claiming worker's clock: skew-tolerant)
    listed = set(await redis.zrange(constants.WORKERS_SET, 0, -1))
    assert listed == {alive.worker_id.encode(), dead.worker_id.encode()}
    assert (await http_metrics.read_queue_gauges(redis)).workers == 1


async def test_ends_after_the_count_is_gone_never_make_it_negative(redis: Redis) -> None:
    async def quick(ctx: dict[str, Any]) -> None:
        return None

    w = _worker(redis, func(quick, name="quick"))
    await _pool(redis).enqueue_job("quick", _job_id="q-1")
    claimed = await w._claim_jobs(10, 100, None)
    await w._forget_jobs_count()  # the worker stopping (or its count expiring) meanwhile
    await w._run_claimed(claimed)
    await asyncio.gather(*w.tasks.values())
    assert await redis.exists(constants.WORKER_JOBS_PREFIX + w.worker_id) == 0
    assert (await http_metrics.read_queue_gauges(redis)).in_progress == 0


async def test_a_stopped_worker_leaves_no_count(redis: Redis) -> None:
    w = _worker(redis)
    w.burst = True
    await w.async_run()
    assert await redis.exists(constants.WORKER_JOBS_PREFIX + w.worker_id) == 0
    assert await redis.zcard(constants.WORKERS_SET) == 0


# ---- webhooks awaiting retry ------------------------------------------------------------------


def _webhook_ctx(redis: Redis, schedule: list[float]) -> dict[str, Any]:
    settings = Settings(webhook_retry_schedule=schedule, webhook_retry_jitter=0)
    state = WorkerState(
        services=SimpleNamespace(settings=settings, redis=redis),  # type: ignore[arg-type]
        adapters={},
        providers={},
        http=None,  # type: ignore[arg-type]
        rng=random.Random(0),
        delivery=None,  # type: ignore[arg-type]
        breakers=None,  # type: ignore[arg-type]
    )
    return {"state": state, "redis": _pool(redis)}


def _attempts(monkeypatch: pytest.MonkeyPatch, *outcomes: str) -> None:
    results = iter(outcomes)

    async def attempt(*args: Any, **kwargs: Any) -> Attempt:
        return Attempt(next(results), 503)

    monkeypatch.setattr(tasks, "attempt_delivery", attempt)


async def test_a_deferred_webhook_counts_until_an_attempt_delivers_it(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    _attempts(monkeypatch, "retry", "retry", "delivered")
    ctx = _webhook_ctx(redis, [60.0, 60.0, 60.0])
    await tasks.deliver_webhook(ctx, "msg-1", 1)
    assert (await http_metrics.read_queue_gauges(redis)).webhooks_awaiting_retry == 1
    due = await redis.zscore(constants.WEBHOOK_RETRY_SET, "msg-1")
    assert due is not None and due == pytest.approx(timestamp_ms() + 60_000, abs=2000)
    await tasks.deliver_webhook(ctx, "msg-1", 2)
    assert (await http_metrics.read_queue_gauges(redis)).webhooks_awaiting_retry == 1
    await tasks.deliver_webhook(ctx, "msg-1", 3)
    gauges = await http_metrics.read_queue_gauges(redis)
    assert gauges.webhooks_awaiting_retry == 0
    assert gauges.deferred == 2  # the retry jobs themselves (ids per attempt) are still queued


async def test_an_exhausted_webhook_leaves_the_retry_set(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    _attempts(monkeypatch, "retry", "retry")
    ctx = _webhook_ctx(redis, [60.0])
    await tasks.deliver_webhook(ctx, "msg-2", 1)
    assert await redis.zcard(constants.WEBHOOK_RETRY_SET) == 1
    await tasks.deliver_webhook(ctx, "msg-2", 2)  # no delay left: dead-lettered
    assert await redis.zcard(constants.WEBHOOK_RETRY_SET) == 0
    assert await redis.zscore(constants.WEBHOOK_FAILED_SET, "msg-2") is not None


async def test_a_first_attempt_that_delivers_costs_no_retry_set_write(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    _attempts(monkeypatch, "delivered")
    await redis.zadd(constants.WEBHOOK_RETRY_SET, {"msg-3": 1})  # would be removed if touched
    await tasks.deliver_webhook(_webhook_ctx(redis, [60.0]), "msg-3", 1)
    assert await redis.zcard(constants.WEBHOOK_RETRY_SET) == 1


async def test_long_stale_retry_members_are_dropped(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    _attempts(monkeypatch, "retry")
    await redis.zadd(constants.WEBHOOK_RETRY_SET, {"lost": timestamp_ms() - 10 * 86_400_000})
    await tasks.deliver_webhook(_webhook_ctx(redis, [60.0]), "msg-4", 1)
    assert await redis.zrange(constants.WEBHOOK_RETRY_SET, 0, -1) == [b"msg-4"]


# ---- the scrape ----------------------------------------------------------------------------------


def _metrics_app(redis: Redis, token: str | None = None) -> web.Application:
    app = web.Application()
    app[SERVICES] = SimpleNamespace(  # type: ignore[misc]
        settings=SimpleNamespace(metrics_token=None if token is None else _Secret(token)),
        redis=redis,
    )
    app.router.add_get("/metrics", http_metrics.handler)
    return app


class _Secret:
    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_metrics_carry_the_gauges_in_one_round_trip(
    redis: Redis, aiohttp_client: Any
) -> None:
    now = timestamp_ms()
    await redis.zadd(QUEUE, {"a": now - 3000, "b": now + 60_000})
    await redis.zadd(constants.WEBHOOK_RETRY_SET, {"m": now + 1000})
    sent: list[str] = []
    execute = redis.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]).upper())
        return await execute(*args, **options)  # type: ignore[no-untyped-call]

    redis.execute_command = counted  # type: ignore[method-assign]
    client: TestClient[Any, Any] = await aiohttp_client(_metrics_app(redis))
    await client.get("/metrics")  # the script is loaded once (NOSCRIPT, then EVAL)
    sent.clear()
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert sent == ["EVALSHA"]  # one round trip, nothing scanned
    text = await resp.text()
    assert _value(text, "verify_queue_up") == 1
    assert _value(text, "verify_queue_due_jobs") == 1
    assert _value(text, "verify_queue_deferred_jobs") == 1
    assert _value(text, "verify_queue_lag_seconds") >= 3
    assert _value(text, "verify_queue_wait_seconds") >= 3
    assert _value(text, "verify_jobs_in_progress") == 0
    assert _value(text, "verify_webhooks_awaiting_retry") == 1
    assert "verify_http_requests_total" in text or "verify_http_requests" in text


async def test_metrics_without_redis_say_so_instead_of_stale_figures(
    aiohttp_client: Any,
) -> None:
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    client: TestClient[Any, Any] = await aiohttp_client(_metrics_app(dead))
    resp = await client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    assert _value(text, "verify_queue_up") == 0
    assert "verify_queue_due_jobs" not in text
    await dead.aclose()


async def test_metrics_gauges_need_the_scrape_token_too(redis: Redis, aiohttp_client: Any) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(_metrics_app(redis, "s3cret-scrape"))
    assert (await client.get("/metrics")).status == 401
    resp = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
    assert resp.status == 200
    assert _value(await resp.text(), "verify_queue_up") == 1

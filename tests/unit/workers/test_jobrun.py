"""The worker's own job runner (workers/jobrun.py) keeps arq's job semantics, against a real
redis-server: tries, Retry with defer, failures, timeouts, the ends written in batches, and a
job's slot (and in-progress key) held until its end is in Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import deserialize_job_raw
from arq.utils import timestamp_ms
from arq.worker import Function, Retry, RetryJob, func
from redis.asyncio import Redis

from orchestrator.engine import jobs
from workers.jobrun import ClaimedJob, EndWriter, JobEnd
from workers.worker import WakeableWorker

QUEUE = "arq:queue"


def _pool(redis: Redis) -> ArqRedis:
    return ArqRedis(connection_pool=redis.connection_pool)


def _worker(redis: Redis, *functions: Function, **options: Any) -> WakeableWorker:
    settings: dict[str, Any] = {"handle_signals": False, "keep_result": 0, "max_jobs": 10}
    settings.update(options)
    return WakeableWorker(functions=list(functions), redis_pool=_pool(redis), **settings)


async def _enqueue(redis: Redis, name: str, job_id: str, *args: Any) -> None:
    job = await _pool(redis).enqueue_job(name, *args, _job_id=job_id)
    assert job is not None


async def _run_due_jobs(worker: WakeableWorker) -> list[ClaimedJob]:
    """One poll's claim, then wait for the claimed jobs' tasks (their ends written)."""
    claimed = await worker._claim_jobs(worker.max_jobs, 1000, None)
    await worker._run_claimed(claimed)
    await asyncio.gather(*worker.tasks.values())
    return claimed


async def _job_keys(redis: Redis, job_id: str) -> dict[str, bool]:
    return {
        "queued": await redis.zscore(QUEUE, job_id) is not None,
        "record": bool(await redis.exists(job_key_prefix + job_id)),
        "retry": bool(await redis.exists(retry_key_prefix + job_id)),
        "in_progress": bool(await redis.exists(in_progress_key_prefix + job_id)),
    }


GONE = {"queued": False, "record": False, "retry": False, "in_progress": False}
QUEUED_TO_RUN_AGAIN = {"queued": True, "record": True, "retry": True, "in_progress": False}


async def _noop(ctx: dict[str, Any]) -> None:
    return None


def _job(fn: Callable[..., Awaitable[Any]], **options: Any) -> Function:
    return func(fn, name=fn.__name__, **options)  # type: ignore[arg-type]


# ---- outcomes ------------------------------------------------------------------------------


async def test_a_completed_job_is_removed_and_sees_its_ctx(redis: Redis) -> None:
    seen: list[dict[str, Any]] = []

    async def work(ctx: dict[str, Any], a: int, *, b: str) -> None:
        seen.append({**ctx, "a": a, "b": b})

    before = timestamp_ms()
    await _pool(redis).enqueue_job("work", 1, b="x", _job_id="ok")
    w = _worker(redis, _job(work), ctx={"shared": "yes"})
    [claimed] = await _run_due_jobs(w)

    [ctx] = seen
    assert (ctx["a"], ctx["b"], ctx["shared"]) == (1, "x", "yes")
    assert (ctx["job_id"], ctx["job_try"], ctx["score"]) == ("ok", 1, claimed.score)
    assert isinstance(ctx["enqueue_time"], datetime)
    assert ctx["enqueue_time"].timestamp() * 1000 >= before - 1
    assert (w.jobs_complete, w.jobs_failed, w.jobs_retried) == (1, 0, 0)
    assert await _job_keys(redis, "ok") == GONE
    assert w.job_counter == 0


async def test_retry_with_defer_requeues_later_and_counts_the_next_try(redis: Redis) -> None:
    tries: list[int] = []

    async def flaky(ctx: dict[str, Any]) -> None:
        tries.append(ctx["job_try"])
        if len(tries) == 1:
            raise Retry(defer=30)

    await _enqueue(redis, "flaky", "flaky")
    await redis.zadd(QUEUE, {"flaky": timestamp_ms() - 10_000})  # due for a while
    w = _worker(redis, _job(flaky))
    before = timestamp_ms()
    await _run_due_jobs(w)

    assert await _job_keys(redis, "flaky") == QUEUED_TO_RUN_AGAIN
    score = await redis.zscore(QUEUE, "flaky")
    # due 30 s after the retry, not 30 s after it was first due
    assert score is not None and before + 30_000 <= score <= timestamp_ms() + 30_000
    assert w.jobs_retried == 1 and w.jobs_failed == 0
    assert await _run_due_jobs(w) == []  # not due before the deferral

    await redis.zadd(QUEUE, {"flaky": timestamp_ms() - 1})
    await _run_due_jobs(w)
    assert tries == [1, 2]
    assert w.jobs_complete == 1
    assert await _job_keys(redis, "flaky") == GONE


async def test_retry_without_defer_keeps_the_score(redis: Redis) -> None:
    async def again(ctx: dict[str, Any]) -> None:
        raise Retry()

    await _enqueue(redis, "again", "again")
    score = await redis.zscore(QUEUE, "again")
    await _run_due_jobs(_worker(redis, _job(again)))
    assert await redis.zscore(QUEUE, "again") == score
    assert await _job_keys(redis, "again") == QUEUED_TO_RUN_AGAIN


async def test_retry_job_and_cancellation_run_again(redis: Redis) -> None:
    async def retry_job(ctx: dict[str, Any]) -> None:
        raise RetryJob()

    async def cancelled(ctx: dict[str, Any]) -> None:
        raise asyncio.CancelledError()

    await _enqueue(redis, "retry_job", "r")
    await _enqueue(redis, "cancelled", "c")
    w = _worker(redis, _job(retry_job), _job(cancelled))
    await _run_due_jobs(w)
    assert w.jobs_retried == 2 and w.jobs_failed == 0
    assert await _job_keys(redis, "r") == QUEUED_TO_RUN_AGAIN
    assert await _job_keys(redis, "c") == QUEUED_TO_RUN_AGAIN


async def test_a_worker_cancelled_mid_job_leaves_it_to_run_again(redis: Redis) -> None:
    started = asyncio.Event()

    async def long(ctx: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(60)

    await _enqueue(redis, "long", "long")
    w = _worker(redis, _job(long))
    await w._run_claimed(await w._claim_jobs(10, 100, None))
    await started.wait()
    for task in w.tasks.values():
        task.cancel()
    await asyncio.gather(*w.tasks.values(), return_exceptions=True)
    assert w.jobs_retried == 1
    assert await _job_keys(redis, "long") == QUEUED_TO_RUN_AGAIN


async def test_max_tries_exceeded_fails_without_running_and_removes_the_job(
    redis: Redis,
) -> None:
    ran: list[int] = []

    async def limited(ctx: dict[str, Any]) -> None:
        ran.append(ctx["job_try"])

    await _enqueue(redis, "limited", "lim")
    await redis.set(retry_key_prefix + "lim", 2)  # two runs already cut short
    w = _worker(redis, _job(limited, max_tries=2))
    [claimed] = await _run_due_jobs(w)
    assert claimed.job_try == 3
    assert ran == []
    assert w.jobs_failed == 1
    assert await _job_keys(redis, "lim") == GONE


async def test_the_worker_max_tries_applies_when_the_function_has_none(redis: Redis) -> None:
    async def plain(ctx: dict[str, Any]) -> None:
        return None

    await _enqueue(redis, "plain", "p")
    await redis.set(retry_key_prefix + "p", 1)
    w = _worker(redis, _job(plain), max_tries=1)
    await _run_due_jobs(w)
    assert w.jobs_failed == 1 and w.jobs_complete == 0


async def test_a_record_try_above_the_count_is_kept(redis: Redis) -> None:
    tries: list[int] = []

    async def counted(ctx: dict[str, Any]) -> None:
        tries.append(ctx["job_try"])

    await _pool(redis).enqueue_job("counted", _job_id="t", _job_try=3)
    w = _worker(redis, _job(counted, max_tries=5))
    await _run_due_jobs(w)
    assert tries == [3]


async def test_a_timeout_fails_the_job_and_removes_it(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    async def hangs(ctx: dict[str, Any]) -> None:
        await asyncio.sleep(30)

    await _enqueue(redis, "hangs", "hang")
    w = _worker(redis, _job(hangs, timeout=0.05))
    began = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="arq.worker"):
        await _run_due_jobs(w)
    assert time.monotonic() - began < 5
    assert w.jobs_failed == 1 and w.jobs_retried == 0
    assert await _job_keys(redis, "hang") == GONE
    assert "TimeoutError" in caplog.text


async def test_the_worker_timeout_applies_when_the_function_has_none(redis: Redis) -> None:
    async def hangs(ctx: dict[str, Any]) -> None:
        await asyncio.sleep(30)

    await _enqueue(redis, "hangs", "hang")
    w = _worker(redis, _job(hangs), job_timeout=0.05)
    await asyncio.wait_for(_run_due_jobs(w), 5)
    assert w.jobs_failed == 1


async def test_an_exception_fails_the_job_logged_with_its_traceback(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(ctx: dict[str, Any]) -> None:
        raise ValueError("boom")

    await _enqueue(redis, "broken", "b")
    w = _worker(redis, _job(broken))
    with caplog.at_level(logging.ERROR, logger="arq.worker"):
        await _run_due_jobs(w)
    assert w.jobs_failed == 1 and w.jobs_complete == 0
    assert await _job_keys(redis, "b") == GONE
    [record] = [r for r in caplog.records if "b:broken failed" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


async def test_a_missing_record_or_unknown_function_fails_the_job(redis: Redis) -> None:
    async def known(ctx: dict[str, Any]) -> None:
        return None

    await redis.zadd(QUEUE, {"expired": timestamp_ms() - 10})
    await redis.set(retry_key_prefix + "expired", 0)
    await _enqueue(redis, "unknown", "unknown")
    w = _worker(redis, _job(known))
    await _run_due_jobs(w)
    assert w.jobs_failed == 2
    assert await _job_keys(redis, "expired") == GONE
    assert await _job_keys(redis, "unknown") == GONE


async def test_job_hooks_run_around_the_end(redis: Redis) -> None:
    events: list[tuple[str, bool]] = []

    async def job(ctx: dict[str, Any]) -> None:
        events.append(("job", True))

    def hook(name: str) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def record(ctx: dict[str, Any]) -> None:
            events.append((name, await redis.exists(job_key_prefix + ctx["job_id"]) == 1))

        return record

    await _enqueue(redis, "job", "hooked")
    w = _worker(
        redis,
        _job(job),
        on_job_start=hook("start"),
        on_job_end=hook("end"),
        after_job_end=hook("after"),
    )
    await _run_due_jobs(w)
    # (name, record still there): after_job_end comes once the end is written
    assert events == [("start", True), ("job", True), ("end", True), ("after", False)]


async def test_unsupported_options_are_refused(redis: Redis) -> None:
    async def job(ctx: dict[str, Any]) -> None:
        return None

    with pytest.raises(ValueError, match="keep_result"):
        _worker(redis, _job(job), keep_result=60)
    with pytest.raises(ValueError, match="keep_result"):
        _worker(redis, _job(job, keep_result=60))
    with pytest.raises(ValueError, match="abort"):
        _worker(redis, _job(job), allow_abort_jobs=True)


async def test_run_job_reads_the_record_itself_when_called_like_arq(redis: Redis) -> None:
    runs: list[int] = []

    async def job(ctx: dict[str, Any]) -> None:
        runs.append(ctx["job_try"])

    await _enqueue(redis, "job", "direct")
    await redis.set(in_progress_key_prefix + "direct", 1)
    w = _worker(redis, _job(job))
    await w.run_job("direct", timestamp_ms())
    assert runs == [1]
    assert await _job_keys(redis, "direct") == GONE


# ---- ends written in batches ---------------------------------------------------------------


async def test_ends_of_concurrent_jobs_share_round_trips_and_remove_every_key(
    redis: Redis,
) -> None:
    release = asyncio.Event()

    async def waits(ctx: dict[str, Any], n: int) -> None:
        await release.wait()

    n = 40
    for i in range(n):
        await _enqueue(redis, "waits", f"w{i}", i)
    w = _worker(redis, _job(waits), max_jobs=n)
    batches: list[int] = []
    write = w._write_ends

    async def counted(ends: list[JobEnd]) -> None:
        batches.append(len(ends))
        await write(ends)

    w._ends = EndWriter(counted)
    await w._run_claimed(await w._claim_jobs(n, 1000, None))
    await asyncio.sleep(0.05)
    release.set()  # every job ends in the same loop iteration
    await asyncio.gather(*w.tasks.values())

    assert batches == [n]
    assert w.jobs_complete == n and w.job_counter == 0
    assert await redis.zcard(QUEUE) == 0
    assert await redis.keys("arq:*") == []


async def test_ends_that_come_during_a_write_go_in_the_next_one() -> None:
    first_write_started = asyncio.Event()
    finish_first_write = asyncio.Event()
    written: list[list[str]] = []

    async def write(ends: list[JobEnd]) -> None:
        written.append([end.job_id for end in ends])
        if len(written) == 1:
            first_write_started.set()
            await finish_first_write.wait()

    writer = EndWriter(write)
    first = asyncio.create_task(writer.write(JobEnd("a", done=True)))
    await first_write_started.wait()
    later = [asyncio.create_task(writer.write(JobEnd(i, done=True))) for i in "bcd"]
    await asyncio.sleep(0.01)
    assert not first.done()  # its write is still in flight
    finish_first_write.set()
    await asyncio.gather(first, *later)
    assert written == [["a"], ["b", "c", "d"]]


async def test_a_failed_write_fails_every_end_of_its_batch() -> None:
    async def write(ends: list[JobEnd]) -> None:
        raise ConnectionError("redis went away")

    writer = EndWriter(write)
    results = await asyncio.gather(
        writer.write(JobEnd("a", done=True)),
        writer.write(JobEnd("b", done=False)),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]


async def test_a_job_holds_its_slot_and_claim_until_its_end_is_written(redis: Redis) -> None:
    async def quick(ctx: dict[str, Any]) -> None:
        return None

    await _enqueue(redis, "quick", "q")
    w = _worker(redis, _job(quick), max_jobs=1)
    other = _worker(redis, _job(quick))
    write_started = asyncio.Event()
    finish_write = asyncio.Event()
    write = w._write_ends

    async def slow_write(ends: list[JobEnd]) -> None:
        write_started.set()
        await finish_write.wait()
        await write(ends)

    w._ends = EndWriter(slow_write)
    await w._run_claimed(await w._claim_jobs(1, 100, None))
    await write_started.wait()
    # the job ran, its end is not written yet: still held here, claimable by nobody
    assert w.jobs_complete == 1
    assert w.job_counter == 1
    assert await other._claim_jobs(10, 100, None) == []
    assert await w._claim_jobs(10, 100, None) == []
    finish_write.set()
    await asyncio.gather(*w.tasks.values())
    assert w.job_counter == 0
    assert await _job_keys(redis, "q") == GONE
    assert await other._claim_jobs(10, 100, None) == []  # done: never claimed again


async def test_a_claim_counts_the_try_and_reads_the_record(redis: Redis) -> None:
    """What a worker killed right after its claim leaves: the next claim counts one more try."""
    await _enqueue(redis, "job", "k", 7)
    w = _worker(redis, _job(_noop))
    [first] = await w._claim_jobs(10, 100, None)
    assert first.job_try == 1 and first.record is not None
    assert await redis.ttl(retry_key_prefix + "k") > 86_400
    await redis.delete(in_progress_key_prefix + "k")  # its in-progress key expired
    [second] = await w._claim_jobs(10, 100, None)
    assert second.job_try == 2 and second.record == first.record


async def test_a_claim_prefetches_the_key_its_job_reads_first(redis: Redis) -> None:
    seen: list[object] = []

    async def send(ctx: dict[Any, Any], *args: Any) -> None:
        seen.append(ctx["prefetched"])

    await redis.set("state:rid-1", b"stored state")
    await _enqueue(redis, "send", "send:rid-1:0")
    await _enqueue(redis, "send", "send:rid-gone:1")  # its key does not exist
    await _enqueue(redis, "send", "other:rid-1:0")  # no rule for this job id
    await redis.hset("state:rid-hash", "v", "1")  # another type: left for the job to read
    await _enqueue(redis, "send", "send:rid-hash:0")
    w = _worker(redis, func(send, name="send"))
    w.prefetch = {"send:": "state:"}
    claimed = {job.job_id: job.prefetched for job in await _run_due_jobs(w)}
    assert claimed == {
        "send:rid-1:0": b"stored state",
        "send:rid-gone:1": None,
        "other:rid-1:0": None,
        "send:rid-hash:0": None,
    }
    assert sorted(seen, key=repr) == sorted([b"stored state", None, None, None], key=repr)


def test_job_records_leave_out_arqs_empty_fields_and_read_back_whole() -> None:
    raw = jobs.serialize_job("step_timeout", ["rid", 0], 1234)
    assert b'"t"' not in raw and b'"k"' not in raw
    assert deserialize_job_raw(raw, deserializer=jobs.deserialize_job) == (
        "step_timeout", ["rid", 0], {}, None, 1234
    )  # fmt: skip
    # records arq itself writes (all fields) read the same way
    full = json.dumps({"t": 2, "f": "f", "a": [], "k": {"x": 1}, "et": 5}).encode()
    assert deserialize_job_raw(full, deserializer=jobs.deserialize_job) == ("f", [], {"x": 1}, 2, 5)

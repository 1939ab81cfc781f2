"""Running arq jobs with fewer Redis round trips than arq's own `Worker.run_job`.

arq reads each job (GET record, INCR + EXPIRE its try count: one MULTI) when the job starts and
writes its end (another MULTI) when it ends. Here the claim already brought the record and the
try count (`workers/worker.py`, `_CLAIM`), and the ends of the jobs that end in the same loop
iteration, or while another batch of ends is being written, are written together by one Lua
script (one round trip; none is held back when nothing is in flight).

Job lifecycle, and what a crash (kill -9, lost connection) at each point does:

1. claim (one Lua call, atomic): set `arq:in-progress:<id>` (TTL `in_progress_timeout_s`), INCR
   and EXPIRE `arq:retry:<id>`, read `arq:job:<id>`. A crash after it: the job stays queued and
   runs again elsewhere once the in-progress key expires, with its try count one higher (so a
   job that keeps killing its worker stops after `max_tries`).
2. run the function in this task, bounded by its timeout (`asyncio.timeout`, no extra task).
   A crash meanwhile: as after 1.
3. end (`EndWriter`): one Lua call for the batch, so each job's end is all-or-nothing, as arq's
   MULTI is: a job is never left in the queue without its in-progress key while it is done (it
   would run twice), nor done with its record gone but still queued. A crash before the call
   reaches Redis: none of the batch's ends are written; those jobs run again after their
   in-progress keys expire, as they would under arq if killed before its finish MULTI. A write
   that fails (Redis down) fails every job task of its batch with that error, as arq's failed
   MULTI did for its one job; the poll loop logs it and the jobs run again after that expiry.
4. only then does the job's task end, releasing its slot (semaphore, `job_counter`): the worker
   never claims more than `max_jobs`, and a job's own in-progress key is gone only once its end
   is written, so it cannot be claimed again in between.

Kept from arq: function lookup by name, `max_tries` (per function, else the worker's), a record's
`_job_try`, `Retry(defer=...)` (score bumped to now + defer), CancelledError / RetryJob → run
again, any other exception → logged with `logger.exception` and the job ended as failed, the
per-function or worker timeout, ctx `job_id`/`job_try`/`enqueue_time`/`score`, `on_job_start`,
`on_job_end`, `after_job_end`, the counters `jobs_complete`/`jobs_failed`/`jobs_retried` (health
check, burst mode), a missing record or unknown function → ended as failed.
Not supported (rejected at construction): results (`keep_result` must be 0 and results are not
stored), aborting jobs (`allow_abort_jobs`), cron jobs. Arq's per-exception `extra` log field
is not emitted.

COUPLING: reuses arq 0.28's key prefixes, `Function`, `Retry`, `RetryJob`, `deserialize_job_raw`
and the `Worker` attributes named above; pyproject pins `arq<0.29`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import deserialize_job_raw
from arq.utils import args_to_string, ms_to_datetime, timestamp_ms, truncate
from arq.worker import Function, Retry, RetryJob, Worker

from orchestrator.constants import WORKER_JOBS_PREFIX, WORKERS_SET

__all__ = ["RETRY_KEY_TTL_S", "ClaimedJob", "ClaimedJobWorker", "EndWriter", "JobEnd"]

# The job lifecycle lines keep arq's logger, so the level set for "arq" (WARNING in
# orchestrator/logjson.py) applies to them as it did to arq's own; they are only formatted
# when that level lets them through.
log = logging.getLogger("arq.worker")

# arq keeps a job's try count this long (seconds)
RETRY_KEY_TTL_S = 88400


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job this worker holds the in-progress key of, with what the claim read."""

    job_id: str
    score: int
    record: bytes | None  # arq:job:<id>; None when it had expired or was deleted
    job_try: int  # arq:retry:<id> after the claim counted this run
    # the key the job reads first, read by the claim (WakeableWorker.prefetch); None: not read
    # or missing. Jobs find it in ctx["prefetched"].
    prefetched: bytes | None = None


@dataclass(frozen=True, slots=True)
class JobEnd:
    """What the end of one run writes: `done` removes the job (in-progress key, record, try
    count, queue entry); otherwise only the in-progress key goes, and the job stays queued
    with its score raised by `defer_ms`, to run again."""

    job_id: str
    done: bool
    defer_ms: int = 0


# Write a batch of job ends, each as arq's finish MULTI would (the script is atomic as a whole).
# It also lowers this worker's count of held jobs (workers/worker.py) by the batch, refreshing
# its TTL and its expiry in the workers set; a count that is gone (expired, or the worker
# stopping) is not made again, negative: the next claim sets it.
# KEYS[1] queue, KEYS[2] this worker's jobs count, KEYS[3] the workers set; ARGV[1..3]
# in-progress, job and retry key prefixes, ARGV[4..7] jobs ended, count ttl ms, worker id, ms
# the count expires; then per job: id, '1' (done) or '0' (run again), ms to add to its score
# ('0': none). ZADD XX: a job removed from the queue meanwhile is not put back (arq's ZINCRBY
# would add it).
_WRITE_ENDS = """
local in_progress, job, retry = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DECRBY', KEYS[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[6])
end
for i = 8, #ARGV, 3 do
  local id = ARGV[i]
  if ARGV[i + 1] == '1' then
    redis.call('DEL', in_progress .. id, job .. id, retry .. id)
    redis.call('ZREM', KEYS[1], id)
  else
    if ARGV[i + 2] ~= '0' then
      redis.call('ZADD', KEYS[1], 'XX', 'INCR', ARGV[i + 2], id)
    end
    redis.call('DEL', in_progress .. id)
  end
end
return #ARGV
"""

_Waiter = tuple[JobEnd, asyncio.Future[None]]


class EndWriter:
    """Writes job ends in as few round trips as it can without holding any back: an end that
    comes while no write is in flight is written on the next loop iteration (with the others
    of that iteration); ends that come during a write go together in the next one."""

    def __init__(self, write: Callable[[list[JobEnd]], Awaitable[object]]) -> None:
        self._write = write
        self._waiting: list[_Waiter] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, end: JobEnd) -> None:
        """Return once `end` is in Redis; raise what writing its batch raised."""
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()
        self._waiting.append((end, written))
        if self._writer is None:
            self._writer = loop.create_task(self._write_while_waiting())
        # a cancelled caller does not unwrite it: the end is in the batch all the same
        await written

    async def _write_while_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._write_batch(batch)
        except BaseException:
            # cancelled (loop shutting down): nothing will write what still waits
            _cancel_all(self._waiting)
            self._waiting = []
            raise
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[_Waiter]) -> None:
        try:
            await self._write([end for end, _ in batch])
        except Exception as exc:
            for _, written in batch:
                if not written.done():
                    written.set_exception(exc)
            return
        except BaseException:
            _cancel_all(batch)
            raise
        for _, written in batch:
            if not written.done():
                written.set_result(None)


def _cancel_all(waiters: list[_Waiter]) -> None:
    for _, written in waiters:
        written.cancel()


@dataclass(frozen=True, slots=True)
class _Call:
    """A claimed job resolved to the function to call."""

    job: ClaimedJob
    function: Function
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    enqueue_time_ms: int
    job_try: int

    @property
    def ref(self) -> str:
        return f"{self.job.job_id}:{self.function.name}"


class ClaimedJobWorker(Worker):
    """An arq Worker that runs jobs claimed together with their records (`run_claimed_job`)
    and writes their ends in batches. See the module docstring for what it keeps of arq."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _reject_unsupported_options(self)
        # the autoscaling count of held jobs (workers/worker.py); the TTL is the in-progress
        # keys' own, so a killed worker's count lasts as long as its claims
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.jobs_count_key = WORKER_JOBS_PREFIX + self.worker_id
        self.jobs_count_ttl_ms = int(self.in_progress_timeout_s * 1000)
        self._end_script: Any = None
        self._ends = EndWriter(self._write_ends)

    async def run_job(self, job_id: str, score: int) -> None:
        """arq's entry point, for a job claimed without its record: read it and count the try
        (arq's MULTI), then run it. Our own claim brings both and calls `run_claimed_job`."""
        async with self.pool.pipeline(transaction=True) as pipe:
            pipe.get(job_key_prefix + job_id)
            pipe.incr(retry_key_prefix + job_id)
            pipe.expire(retry_key_prefix + job_id, RETRY_KEY_TTL_S)
            record, job_try, _ = await pipe.execute()
        await self.run_claimed_job(ClaimedJob(job_id, score, record, int(job_try)))

    async def run_claimed_job(self, job: ClaimedJob) -> None:
        """Run one claimed job and return once its end is written."""
        call = self._resolve(job)
        if call is None:
            self.jobs_failed += 1
            await self._ends.write(JobEnd(job.job_id, done=True))
            return
        if call.job_try > job.job_try:
            # the record asks for a higher try count (enqueued with _job_try): keep it, as arq
            await self.pool.setex(retry_key_prefix + job.job_id, RETRY_KEY_TTL_S, call.job_try)
        max_tries = self.max_tries if call.function.max_tries is None else call.function.max_tries
        if call.job_try > max_tries:
            log.warning("%s max retries %d exceeded", call.ref, max_tries)
            self.jobs_failed += 1
            await self._ends.write(JobEnd(job.job_id, done=True))
            return
        ctx = self._job_ctx(call)
        if self.on_job_start is not None:
            await self.on_job_start(ctx)
        end = await self._call(call, ctx)
        if self.on_job_end is not None:
            await self.on_job_end(ctx)
        await self._ends.write(end)
        if self.after_job_end is not None:
            await self.after_job_end(ctx)

    def _resolve(self, job: ClaimedJob) -> _Call | None:
        """The call the job's record describes; None (logged) when the job cannot run."""
        if job.record is None:
            log.warning("job %s expired", job.job_id)
            return None
        try:
            name, args, kwargs, enqueue_try, enqueue_time_ms = deserialize_job_raw(
                job.record, deserializer=self.job_deserializer
            )
        except Exception:
            log.exception("deserializing job %s failed", job.job_id)
            return None
        function = self.functions.get(name)
        if not isinstance(function, Function):
            log.warning("job %s, function %r not found", job.job_id, name)
            return None
        job_try = max(job.job_try, enqueue_try or 0)
        return _Call(job, function, tuple(args), kwargs, enqueue_time_ms, job_try)

    def _job_ctx(self, call: _Call) -> dict[Any, Any]:
        return {
            **self.ctx,
            "job_id": call.job.job_id,
            "job_try": call.job_try,
            "enqueue_time": ms_to_datetime(call.enqueue_time_ms),
            "score": call.job.score,
            "prefetched": call.job.prefetched,
        }

    async def _call(self, call: _Call, ctx: dict[Any, Any]) -> JobEnd:
        """Call the function within its timeout; the end its outcome asks for."""
        timeout_s = call.function.timeout_s
        if timeout_s is None:
            timeout_s = self.job_timeout_s
        started_ms = timestamp_ms()
        if log.isEnabledFor(logging.INFO):
            _log_start(call, started_ms)
        try:
            async with asyncio.timeout(timeout_s):
                result = await call.function.coroutine(ctx, *call.args, **call.kwargs)
        except (Exception, asyncio.CancelledError) as exc:
            return self._end_after(call, exc, started_ms)
        self.jobs_complete += 1
        if log.isEnabledFor(logging.INFO):
            shown = "" if result is None or not self.log_results else truncate(repr(result))
            log.info("%6.2fs ← %s ● %s", _seconds_since(started_ms), call.ref, shown)
        return JobEnd(call.job.job_id, done=True)

    def _end_after(self, call: _Call, exc: BaseException, started_ms: int) -> JobEnd:
        """The end of a run that raised `exc`: run again (Retry, cancelled) or failed."""
        job_id = call.job.job_id
        if self.retry_jobs and isinstance(exc, Retry):
            self.jobs_retried += 1
            # due `defer` from now: the score moves by defer + the time since it was due
            defer_ms = exc.defer_score + (timestamp_ms() - call.job.score) if exc.defer_score else 0
            log.info(
                "%6.2fs ↻ %s retrying job in %0.2fs",
                _seconds_since(started_ms),
                call.ref,
                (exc.defer_score or 0) / 1000,
            )
            return JobEnd(job_id, done=False, defer_ms=defer_ms)
        if self.retry_jobs and isinstance(exc, asyncio.CancelledError | RetryJob):
            self.jobs_retried += 1
            log.info(
                "%6.2fs ↻ %s cancelled, will be run again", _seconds_since(started_ms), call.ref
            )
            return JobEnd(job_id, done=False)
        self.jobs_failed += 1
        log.exception(
            "%6.2fs ! %s failed, %s: %s",
            _seconds_since(started_ms),
            call.ref,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        return JobEnd(job_id, done=True)

    async def _write_ends(self, ends: list[JobEnd]) -> None:
        if self._end_script is None:
            self._end_script = self.pool.register_script(_WRITE_ENDS)
        args: list[str | int] = [
            in_progress_key_prefix,
            job_key_prefix,
            retry_key_prefix,
            len(ends),
            self.jobs_count_ttl_ms,
            self.worker_id,
            timestamp_ms() + self.jobs_count_ttl_ms,
        ]
        for end in ends:
            args += (end.job_id, "1" if end.done else "0", end.defer_ms)
        await self._end_script(keys=[self.queue_name, self.jobs_count_key, WORKERS_SET], args=args)


def _reject_unsupported_options(worker: Worker) -> None:
    if worker.keep_result_forever or worker.keep_result_s:
        raise ValueError("results are not stored: keep_result must be 0")
    for function in worker.functions.values():
        if not isinstance(function, Function):
            raise ValueError("cron jobs are not supported")
        if function.keep_result_forever or function.keep_result_s:
            raise ValueError(f"results are not stored: {function.name} keep_result must be 0")
    if worker.allow_abort_jobs:
        raise ValueError("aborting jobs is not supported")


def _log_start(call: _Call, started_ms: int) -> None:
    extra = f" try={call.job_try}" if call.job_try > 1 else ""
    late_ms = started_ms - call.job.score
    if late_ms > 1200:
        extra += f" delayed={late_ms / 1000:0.2f}s"
    shown = args_to_string(call.args, call.kwargs)
    waited_s = (started_ms - call.enqueue_time_ms) / 1000
    log.info("%6.2fs → %s(%s)%s", waited_s, call.ref, shown, extra)


def _seconds_since(ms: int) -> float:
    return (timestamp_ms() - ms) / 1000

"""An arq Worker that is woken by a Redis message when a job is due now, instead of waiting
for its next poll. Deferred jobs (timeouts, webhook retries) still come due on the poll.

It also claims due jobs in one Lua call per poll instead of arq's WATCH/EXISTS/ZSCORE/MULTI per
job id (4 round trips each, repeated for every id still in the queue, running ones included),
and that call also reads each claimed job's record and counts its try, which arq does in one
more MULTI per job. Jobs then run in `ClaimedJobWorker.run_claimed_job` (`workers/jobrun.py`:
the job lifecycle, what a crash at each point does, and the ends written in batches).

COUPLING: `_poll_iteration` and `start_jobs` below replace arq internals of the same name and
reuse its private state (`sem`, `job_counter`, `tasks`, `_queue_read_offset`,
`_release_sem_dec_counter_on_complete`, the `arq:in-progress:`, `arq:job:` and `arq:retry:`
keys); `workers/jobrun.py` replaces `run_job`/`finish_job`. They were written against arq 0.28
and pyproject pins `arq<0.29`; re-read `arq/worker.py` before raising that pin.

Autoscaling signal: each worker keeps the number of jobs it holds in `vo:wjobs:<worker id>`
(`WORKER_JOBS_PREFIX`), listed in the sorted set `vo:workers` (`WORKERS_SET`), for the web
`/metrics` gauge `verify_jobs_in_progress`. Every claim sets it to the exact count (the jobs held
before the claim + those it claimed), every batch of ends lowers it (`workers/jobrun.py`), and
both refresh its TTL of `in_progress_timeout_s`. So a killed worker's count lasts as long as
its jobs' in-progress keys would (they are claimed and not re-runnable that long), and a count
thrown off by a race with an end in flight is set right by the next claim, one poll later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from arq.connections import create_pool
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.utils import timestamp_ms
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.constants import WAKE_CHANNEL, WORKERS_SET
from workers.jobrun import RETRY_KEY_TTL_S, ClaimedJob, ClaimedJobWorker

__all__ = ["WakeableWorker"]

log = logging.getLogger("workers.worker")


# Claim due jobs atomically, as arq's per-job WATCH/MULTI does: a job is claimed when it is in
# the queue with a score <= now and has no in-progress key; claiming sets that key with a TTL
# (arq's in_progress_timeout), so a job runs in one worker only, and a killed worker's jobs are
# picked up again once the key expires. Ids come from ZRANGEBYSCORE (ARGV[5] == '') or are given.
# Each claim also counts the try (INCR + EXPIRE of the retry key) and reads the job record, as
# arq's run_job does in its own MULTI.
# It also reads the one key a job is known to start by reading (`prefetch` rules: a job id
# "<id prefix><subject>:<n>" prefetches "<key prefix><subject>"), which the job then need not
# read itself: a send job's verification state.
# Last, it sets this worker's count of held jobs (KEYS[2], TTL ARGV[13] ms) to the jobs held
# before the claim (ARGV[12]) + the claimed, lists the worker in KEYS[3] with the time its count
# expires, and drops workers whose count expired a TTL ago (by this worker's clock).
# KEYS[1] queue, KEYS[2] this worker's jobs count, KEYS[3] the workers set; ARGV: now_ms, max to
# claim, read limit, read offset, explicit ids ('' none), in-progress key prefix, in-progress
# ttl ms, job key prefix, retry key prefix, retry key ttl s, prefetch rules (JSON
# [[id prefix, key prefix], ...]), jobs held, count ttl ms, worker id.
# Returns {id, score, record or nil, try, prefetched or nil, ...} (5 per job).
_CLAIM = """
local now = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local ids, scores = {}, {}
if ARGV[5] == '' then
  local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES',
                           'LIMIT', ARGV[4], ARGV[3])
  for i = 1, #found, 2 do
    ids[#ids + 1] = found[i]
    scores[#scores + 1] = found[i + 1]
  end
else
  ids = cjson.decode(ARGV[5])
end
local rules = cjson.decode(ARGV[11])
local claimed, n = {}, 0
for i, id in ipairs(ids) do
  if n >= want then break end
  local key = ARGV[6] .. id
  if redis.call('EXISTS', key) == 0 then
    local score = scores[i] or redis.call('ZSCORE', KEYS[1], id)
    if score and tonumber(score) <= now then
      redis.call('SET', key, '1', 'PX', ARGV[7])
      local retry = ARGV[9] .. id
      local try = redis.call('INCR', retry)
      redis.call('EXPIRE', retry, ARGV[10])
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = score
      -- false (no record) stays in place, as a nil reply
      claimed[#claimed + 1] = redis.call('GET', ARGV[8] .. id)
      claimed[#claimed + 1] = try
      local prefetched = false
      for _, rule in ipairs(rules) do
        if string.sub(id, 1, #rule[1]) == rule[1] then
          local subject = string.match(string.sub(id, #rule[1] + 1), '^(.*):[^:]*$')
          if subject then
            -- pcall: a key of another type (a verification an older version stored as a
            -- hash) is simply not prefetched; the job reads it itself
            local value = redis.pcall('GET', rule[2] .. subject)
            if type(value) == 'string' then prefetched = value end
          end
          break
        end
      end
      claimed[#claimed + 1] = prefetched
      n = n + 1
    end
  end
end
local ttl = tonumber(ARGV[13])
redis.call('SET', KEYS[2], tonumber(ARGV[12]) + n, 'PX', ttl)
redis.call('ZADD', KEYS[3], now + ttl, ARGV[14])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ttl)
return claimed
"""


def _claimed_jobs(raw: list[Any]) -> list[ClaimedJob]:
    return [
        ClaimedJob(raw[i].decode(), int(float(raw[i + 1])), raw[i + 2], int(raw[i + 3]), raw[i + 4])
        for i in range(0, len(raw), 5)
    ]


class WakeableWorker(ClaimedJobWorker):
    """Polls every `poll_delay`, and at once whenever the web process publishes a wake-up."""

    _claim_script: Any = None
    # job id prefix -> key prefix read with the claim (see _CLAIM); set by create_worker
    prefetch: dict[str, str] = {}  # noqa: RUF012 - replaced, never mutated
    # set by main(): wakes the poll loop (published wake-ups, freed slots)
    _wake: asyncio.Event | None = None
    # the last poll filled every free slot, so due jobs may still be waiting for one
    _saturated = False

    async def _claim_jobs(
        self, limit: int, read_limit: int, job_ids: list[str] | None
    ) -> list[ClaimedJob]:
        if self._claim_script is None:
            self._claim_script = self.pool.register_script(_CLAIM)
        raw = await self._claim_script(
            keys=[self.queue_name, self.jobs_count_key, WORKERS_SET],
            args=[
                timestamp_ms(),
                limit,
                read_limit,
                self._queue_read_offset,
                "" if job_ids is None else json.dumps(job_ids),
                in_progress_key_prefix,
                int(self.in_progress_timeout_s * 1000),
                job_key_prefix,
                retry_key_prefix,
                RETRY_KEY_TTL_S,
                json.dumps(list(self.prefetch.items())),
                self.job_counter,
                self.jobs_count_ttl_ms,
                self.worker_id,
            ],
        )
        return _claimed_jobs(raw)

    async def _claim(
        self, limit: int, read_limit: int, job_ids: list[str] | None
    ) -> list[tuple[str, int]]:
        """`_claim_jobs` as (id, score) pairs (as before records came with the claim); the
        tries are counted all the same. Used by tests/unit/test_hot_paths.py."""
        return [
            (job.job_id, job.score) for job in await self._claim_jobs(limit, read_limit, job_ids)
        ]

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's start_jobs for given ids, in one Lua call instead of 4 round trips per id."""
        free = self.max_jobs - self.job_counter
        if free <= 0 or not job_ids:
            return
        ids = [j.decode() for j in job_ids]
        claimed = await self._claim_jobs(free, len(ids), ids)
        await self._run_claimed(claimed)

    async def _run_claimed(self, claimed: list[ClaimedJob]) -> None:
        for job in claimed:
            # never waits: at most max_jobs - job_counter were claimed, and the semaphore
            # (max_jobs + 1 slots) is taken and released together with job_counter. The slot
            # is released when the task ends, which is after the job's end is in Redis.
            await self.sem.acquire()
            self.job_counter += 1
            t = self.loop.create_task(self.run_claimed_job(job))
            t.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            t.add_done_callback(self._slot_freed)
            self.tasks[job.job_id] = t

    def _slot_freed(self, _: asyncio.Task[Any]) -> None:
        """A job ended while due jobs may wait: claim again now, not at the next poll (arq's
        start_jobs would have been blocked on the semaphore and taken the slot at once)."""
        if self._saturated and self._wake is not None:
            self._saturated = False
            self._wake.set()

    async def _poll_iteration(self) -> None:
        """arq's poll iteration with the ZRANGEBYSCORE and the claims in one Lua call."""
        count = self.queue_read_limit
        if self.burst and self.max_burst_jobs >= 0:
            burst_jobs_remaining = self.max_burst_jobs - self._jobs_started()
            if burst_jobs_remaining < 1:
                return
            count = min(burst_jobs_remaining, count)
        if self.allow_pick_jobs:
            free = min(self.max_jobs - self.job_counter, count)
            if free > 0:
                claimed = await self._claim_jobs(free, count, None)
                self._saturated = len(claimed) >= free
                await self._run_claimed(claimed)
            else:
                self._saturated = True

        # (arq's abort check: aborting jobs is refused at construction, workers/jobrun.py)

        for job_id, t in list(self.tasks.items()):
            if t.done():
                del self.tasks[job_id]
                # required to make sure errors in run_job get propagated
                t.result()

        await self.heart_beat()

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        else:
            await self._reachable()
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        wake = self._wake = asyncio.Event()
        listener = asyncio.create_task(self._listen(wake))
        try:
            while True:
                wake.clear()
                try:
                    await self._poll_iteration()
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    # Redis restarting or failing over: keep this process and poll again. Jobs
                    # it could not finish are re-run once their in-progress key expires.
                    log.warning("redis unavailable, polling again shortly: %s", exc)
                    await asyncio.sleep(max(self.poll_delay_s, 0.5))
                    continue
                if self.burst and await self._burst_done():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.poll_delay_s)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
            # a worker that stops holds no jobs: its count goes now, not after its TTL (ends
            # still being written find no count and leave it be)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._forget_jobs_count()

    async def _forget_jobs_count(self) -> None:
        async with self.pool.pipeline(transaction=True) as pipe:
            pipe.delete(self.jobs_count_key)
            pipe.zrem(WORKERS_SET, self.worker_id)
            await pipe.execute()

    async def _reachable(self, tries: int = 5) -> None:
        """Wait for the given pool's Redis as arq's create_pool waits for its own (the startup
        reads Redis): a worker started during a failover waits for the new primary."""
        for attempt in range(tries):
            try:
                await self.pool.ping()
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if attempt == tries - 1:
                    raise
                left = tries - 1 - attempt
                log.warning("redis unavailable at start, %d tries left: %s", left, exc)
                await asyncio.sleep(1)

    async def _burst_done(self) -> bool:
        if 0 <= self.max_burst_jobs <= self._jobs_started():
            await asyncio.gather(*self.tasks.values())
            return True
        if await self.pool.zcard(self.queue_name) == 0:
            await asyncio.gather(*self.tasks.values())
            return True
        return False

    async def _listen(self, wake: asyncio.Event) -> None:
        """Set `wake` on every published wake-up; reconnect quietly if Redis drops us."""
        while True:
            redis: Redis = Redis(connection_pool=self.pool.connection_pool)
            pubsub: Any = redis.pubsub()
            try:
                await pubsub.subscribe(WAKE_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("wake listener reconnecting: %s", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

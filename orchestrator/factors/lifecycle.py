"""Challenge lifecycle jobs and transitions shared by the web process and the workers:

- the expiry job (`challenge_expire`, id `challenge-expire:<YC>`), due at the challenge's
  expiration_date, and `expire_if_due`, which the job and every read/answer run, so a challenge
  past its date is `expired` (with one `challenge.expired` event) whoever notices first;
- the push-send job (`push_send`, id `push:<message id>`) of a challenge or Notification.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.engine import jobs
from orchestrator.factors import events
from orchestrator.factors.models import Challenge
from orchestrator.factors.store import FactorStore, StaleWrite
from orchestrator.timefmt import iso_ms, utcnow

__all__ = [
    "MAX_CAS_RETRIES",
    "cancel_expiry",
    "enqueue_push",
    "expire_if_due",
    "is_overdue",
    "parse_time",
    "run_expiry",
    "schedule_expiry",
]

log = logging.getLogger("orchestrator.factors")

MAX_CAS_RETRIES = 20
# an expiry job that runs a little early (clocks of web and worker hosts) waits this long at most
_EARLY_WAIT = 5.0


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


async def _enqueue(
    redis: Redis, function: str, args: list[Any], job_id: str, due_ms: int, *, wake: bool
) -> None:
    """An arq job in the JSON form our workers read; a second enqueue of one id is a no-op."""
    now_ms = int(time.time() * 1000)
    record = jobs.serialize_job(function, args, now_ms)
    expires = max(due_ms - now_ms, 0) + jobs.EXPIRES_EXTRA_MS
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(jobs.job_key(job_id), record, px=expires, nx=True)
        pipe.zadd(jobs.QUEUE, {job_id: due_ms}, nx=True)
        if wake:
            pipe.publish(constants.WAKE_CHANNEL, "1")
        await pipe.execute()


async def schedule_expiry(redis: Redis, challenge: Challenge) -> None:
    due = _ms(parse_time(challenge.expiration_date))
    await _enqueue(
        redis,
        jobs.CHALLENGE_EXPIRE,
        [challenge.sid],
        jobs.challenge_expire_job_id(challenge.sid),
        due,
        wake=False,
    )


async def cancel_expiry(redis: Redis, challenge_sid: str) -> None:
    """The challenge was answered: its expiry job has nothing left to do."""
    job_id = jobs.challenge_expire_job_id(challenge_sid)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrem(jobs.QUEUE, job_id)
        pipe.delete(jobs.job_key(job_id))
        await pipe.execute()


async def enqueue_push(redis: Redis, challenge_sid: str, message_id: str, ttl: int) -> None:
    await _enqueue(
        redis,
        jobs.PUSH_SEND,
        [challenge_sid, message_id, ttl],
        jobs.push_send_job_id(message_id),
        int(time.time() * 1000),
        wake=True,
    )


def is_overdue(challenge: Challenge, now: datetime) -> bool:
    return challenge.status == "pending" and now >= parse_time(challenge.expiration_date)


async def expire_if_due(
    store: FactorStore, challenge: Challenge, now: datetime | None = None
) -> Challenge:
    """`challenge` as it stands once its expiry, if due, is recorded (once, with its event)."""
    for _ in range(MAX_CAS_RETRIES):
        moment = now or utcnow()
        if not is_overdue(challenge, moment):
            return challenge
        challenge.status = "expired"
        challenge.date_updated = iso_ms(moment)
        factor = await store.get_factor(challenge.factor_sid)
        event = (
            await events.prepare(store.redis, "challenge.expired", factor, challenge)
            if factor is not None
            else None
        )
        try:
            await store.update_challenge(challenge, event)
        except StaleWrite:
            fresh = await store.get_challenge(challenge.sid)
            if fresh is None:
                return challenge
            challenge = fresh
            continue
        return challenge
    return challenge


async def run_expiry(store: FactorStore, challenge_sid: str) -> None:
    """The expiry job: the challenge's expiration_date came, so expire it if still pending."""
    challenge = await store.get_challenge(challenge_sid)
    if challenge is None or challenge.status != "pending":
        return
    early = (parse_time(challenge.expiration_date) - utcnow()).total_seconds()
    if 0 < early <= _EARLY_WAIT:
        await asyncio.sleep(early)
    elif early > _EARLY_WAIT:
        log.warning(
            "expiry of %s ran %.1f s early; it expires when next read", challenge_sid, early
        )
        return
    fresh = await store.get_challenge(challenge_sid)
    if fresh is not None:
        await expire_if_due(store, fresh)

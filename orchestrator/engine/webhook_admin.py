"""Operator tools for webhook messages whose delivery attempts were exhausted.

A message whose last retry failed is kept (its hash `vo:wh:<id>`, for WEBHOOK_TTL) and listed in
the sorted set WEBHOOK_FAILED_SET by the time it was given up. `list_failed` reads that set;
`replay` re-enqueues a message's first attempt as a new job (`webhook:<id>:replay-<n>`) and takes
it off the set. The message id, hence the `webhook-id` header, stays the same, so a receiver that
deduplicates on it still can.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from orchestrator import constants
from orchestrator.engine import jobs
from orchestrator.tenants.apps import get_app
from orchestrator.timefmt import iso_ms

__all__ = ["Replayed", "list_failed", "replay", "replay_all"]

_REPLAY_TRIES = 20


def _iso_from_ms(raw: bytes | str | None) -> str | None:
    if not raw:
        return None
    return iso_ms(datetime.fromtimestamp(int(raw) / 1000, UTC))


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode()


async def list_failed(redis: Redis, limit: int = 100) -> list[dict[str, Any]]:
    """The exhausted messages, most recently given up first."""
    entries = await redis.zrevrange(
        constants.WEBHOOK_FAILED_SET, 0, max(limit, 1) - 1, withscores=True
    )
    out: list[dict[str, Any]] = []
    for member, score in entries:
        message_id = member.decode()
        raw = await redis.hgetall(constants.WEBHOOK_PREFIX + message_id)  # type: ignore[misc]
        record: dict[str, bytes] = {k.decode(): v for k, v in raw.items()}
        attempts = record.get("attempts")
        out.append(
            {
                "id": message_id,
                "request_id": _text(record.get("request_id")),
                "kind": _text(record.get("kind")),
                "dialect": _text(record.get("dialect")),
                "tenant": _text(record.get("tenant")),
                "created": _iso_from_ms(record.get("created_ms")),
                "failed_at": iso_ms(datetime.fromtimestamp(score, UTC)),
                "attempts": int(attempts) if attempts else None,
                "last_status": int(record["last_status"]) if record.get("last_status") else None,
                "replays": int(record.get("replays", b"0")),
                # the message itself outlived its retention: it can no longer be replayed
                "expired": not record,
            }
        )
    return out


@dataclass(frozen=True)
class Replayed:
    id: str
    job_id: str | None  # None: not replayed (see `problem`)
    problem: str | None = None
    warning: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "job_id": self.job_id}
        if self.problem:
            body["error"] = self.problem
        if self.warning:
            body["warning"] = self.warning
        return body


async def replay(redis: Redis, message_id: str, now_ms: int) -> Replayed:
    """Re-enqueue attempt 1 of an exhausted message under a new deterministic job id."""
    key = constants.WEBHOOK_PREFIX + message_id
    for _ in range(_REPLAY_TRIES):
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch(key, constants.WEBHOOK_FAILED_SET)
            if await pipe.zscore(constants.WEBHOOK_FAILED_SET, message_id) is None:
                return Replayed(message_id, None, "not in the failed set")
            record = await pipe.hgetall(key)  # type: ignore[misc]
            if not record:
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.zrem(constants.WEBHOOK_FAILED_SET, message_id)
                await pipe.execute()
                return Replayed(message_id, None, "the message expired; removed from the list")
            n = int(record.get(b"replays", b"0")) + 1
            job_id = jobs.webhook_job_id(message_id, 1, n)
            job = jobs.serialize_job(jobs.DELIVER_WEBHOOK, [message_id, 1, n], now_ms)
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hset(key, "replays", str(n))
            pipe.set(jobs.job_key(job_id), job, px=jobs.EXPIRES_EXTRA_MS, nx=True)
            pipe.zadd(jobs.QUEUE, {job_id: now_ms})
            pipe.zrem(constants.WEBHOOK_FAILED_SET, message_id)
            pipe.publish(constants.WAKE_CHANNEL, "1")
            try:
                await pipe.execute()
            except WatchError:
                continue
        return Replayed(message_id, job_id, warning=await _endpoint_warning(redis, record))
    return Replayed(message_id, None, "too much contention on this message")


async def replay_all(redis: Redis, now_ms: int, batch: int = 500) -> list[Replayed]:
    """Replay every message in the failed set, oldest first."""
    done: list[Replayed] = []
    seen: set[str] = set()
    while True:
        members = await redis.zrange(constants.WEBHOOK_FAILED_SET, 0, batch - 1)
        fresh = [m.decode() for m in members if m.decode() not in seen]
        if not fresh:
            return done
        for message_id in fresh:
            seen.add(message_id)
            done.append(await replay(redis, message_id, now_ms))


async def _endpoint_warning(redis: Redis, record: dict[bytes, bytes]) -> str | None:
    """A replay to a status URL disabled by a 410 is dropped: say so, and how to re-enable it."""
    if record.get(b"dialect") == b"twilio":
        return None
    tenant = record.get(b"tenant", b"").decode()
    app = await get_app(redis, tenant)
    if app is None:
        return "the application no longer exists; the replay will be dropped"
    if app.status_url_disabled:
        return (
            "the application's status URL is disabled (410 Gone); re-enable it with "
            f"`verify-orchestrator apps update {app.id} --enable` or the replay is dropped"
        )
    return None

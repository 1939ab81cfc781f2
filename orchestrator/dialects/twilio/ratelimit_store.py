"""Programmable rate limits (Twilio RateLimits and Buckets), enforced on verification starts.

A service has rate limits (RK…), each named by a `unique_name` that is unique on the service, and
each rate limit has up to ten buckets (BL…): "at most `max` starts per `interval` seconds". A start
that carries `RateLimits={"<unique_name>": "<value>"}` is counted in every bucket of each named
rate limit, per (bucket, value), in a sliding window: a Redis sorted set of start times whose TTL is
the interval. One Lua script checks and counts every bucket at once, so concurrent starts cannot
overshoot and a refused start is counted nowhere.

Storage (prefixes in `constants`): the rate limit and bucket records are JSON strings, a service's
rate limits and a rate limit's buckets are sorted sets by creation time, and a hash maps a
service's unique names to RK sids. Deleting a rate limit deletes its buckets (their windows
expire on their own). Deleting a service does not cascade: its rate limits stay in Redis, out of
reach, since service sids are never reused.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from typing import Literal

from pydantic import BaseModel
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.dialects.twilio.forms import invalid
from orchestrator.dialects.twilio.wire import TwilioError

__all__ = [
    "MAX_BUCKETS",
    "Bucket",
    "RateLimit",
    "consume",
    "create_bucket",
    "create_rate_limit",
    "delete_bucket",
    "delete_rate_limit",
    "get_bucket",
    "get_rate_limit",
    "list_buckets",
    "list_rate_limits",
    "update_bucket",
    "update_rate_limit",
]

MAX_BUCKETS = 10


class RateLimit(BaseModel):
    sid: str
    service_sid: str
    account_sid: str
    unique_name: str
    description: str | None = None
    date_created: str
    date_updated: str


class Bucket(BaseModel):
    sid: str
    rate_limit_sid: str
    service_sid: str
    account_sid: str
    max: int
    interval: int
    date_created: str
    date_updated: str


def _valid_sid(sid: str, prefix: str) -> bool:
    return len(sid) == 34 and sid.startswith(prefix)


# ---- rate limits --------------------------------------------------------------------------------

# the score of a new member of a creation-ordered list: its creation time in ms, bumped past the
# newest member so that creations within one millisecond still list in creation order
_ORDERED_SCORE = """
local function ordered_score(key, created)
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  local score = tonumber(created)
  if newest[2] and tonumber(newest[2]) >= score then score = tonumber(newest[2]) + 1 end
  return score
end
"""

# KEYS: names hash, record, service list; ARGV: unique_name, sid, json, created ms
_CREATE_RATE_LIMIT = (
    _ORDERED_SCORE
    + """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ordered_score(KEYS[3], ARGV[4]), ARGV[2])
return 1
"""
)

# KEYS: record, service list, names hash, bucket list; ARGV: sid, unique_name, bucket prefix
_DELETE_RATE_LIMIT = """
for _, bucket in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  redis.call('DEL', ARGV[3] .. bucket)
end
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[3], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[3], ARGV[2]) end
return 1
"""


async def create_rate_limit(redis: Redis, rate_limit: RateLimit, created_ms: int) -> bool:
    """Store a new rate limit; False when its unique_name is already taken on the service."""
    created = await redis.eval(
        _CREATE_RATE_LIMIT,
        3,
        constants.RATE_LIMIT_NAMES_PREFIX + rate_limit.service_sid,
        constants.RATE_LIMIT_PREFIX + rate_limit.sid,
        constants.SERVICE_RATE_LIMITS_PREFIX + rate_limit.service_sid,
        rate_limit.unique_name,
        rate_limit.sid,
        rate_limit.model_dump_json(),
        str(created_ms),
    )  # type: ignore[misc]
    return bool(created)


async def get_rate_limit(redis: Redis, service_sid: str, sid: str) -> RateLimit | None:
    if not _valid_sid(sid, "RK"):
        return None
    raw = await redis.get(constants.RATE_LIMIT_PREFIX + sid)
    if raw is None:
        return None
    rate_limit = RateLimit.model_validate_json(raw)
    return rate_limit if rate_limit.service_sid == service_sid else None


async def list_rate_limits(
    redis: Redis, service_sid: str, offset: int, count: int
) -> tuple[list[RateLimit], int]:
    key = constants.SERVICE_RATE_LIMITS_PREFIX + service_sid
    total = int(await redis.zcard(key))
    sids = await redis.zrange(key, offset, offset + count - 1)
    found = [await get_rate_limit(redis, service_sid, s.decode()) for s in sids]
    return [r for r in found if r is not None], total


async def update_rate_limit(redis: Redis, rate_limit: RateLimit) -> bool:
    """Rewrite an existing record (XX: a rate limit deleted meanwhile is not brought back)."""
    key = constants.RATE_LIMIT_PREFIX + rate_limit.sid
    return bool(await redis.set(key, rate_limit.model_dump_json(), xx=True))


async def delete_rate_limit(redis: Redis, rate_limit: RateLimit) -> None:
    """The rate limit, its name and its buckets; the buckets' windows expire by themselves."""
    await redis.eval(
        _DELETE_RATE_LIMIT,
        4,
        constants.RATE_LIMIT_PREFIX + rate_limit.sid,
        constants.SERVICE_RATE_LIMITS_PREFIX + rate_limit.service_sid,
        constants.RATE_LIMIT_NAMES_PREFIX + rate_limit.service_sid,
        constants.RATE_LIMIT_BUCKETS_PREFIX + rate_limit.sid,
        rate_limit.sid,
        rate_limit.unique_name,
        constants.BUCKET_PREFIX,
    )  # type: ignore[misc]


# ---- buckets ------------------------------------------------------------------------------------

# KEYS: rate limit record, bucket list, bucket record; ARGV: sid, json, created ms, max buckets
_CREATE_BUCKET = (
    _ORDERED_SCORE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 'full' end
redis.call('SET', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[2], ordered_score(KEYS[2], ARGV[3]), ARGV[1])
return 'ok'
"""
)


async def create_bucket(
    redis: Redis, bucket: Bucket, created_ms: int
) -> Literal["ok", "full", "gone"]:
    """Store a new bucket: "full" at MAX_BUCKETS, "gone" if its rate limit was deleted meanwhile."""
    outcome = await redis.eval(
        _CREATE_BUCKET,
        3,
        constants.RATE_LIMIT_PREFIX + bucket.rate_limit_sid,
        constants.RATE_LIMIT_BUCKETS_PREFIX + bucket.rate_limit_sid,
        constants.BUCKET_PREFIX + bucket.sid,
        bucket.sid,
        bucket.model_dump_json(),
        str(created_ms),
        str(MAX_BUCKETS),
    )  # type: ignore[misc]
    text = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
    if text == "full":
        return "full"
    if text == "gone":
        return "gone"
    return "ok"


async def get_bucket(redis: Redis, rate_limit_sid: str, sid: str) -> Bucket | None:
    if not _valid_sid(sid, "BL"):
        return None
    raw = await redis.get(constants.BUCKET_PREFIX + sid)
    if raw is None:
        return None
    bucket = Bucket.model_validate_json(raw)
    return bucket if bucket.rate_limit_sid == rate_limit_sid else None


async def list_buckets(
    redis: Redis, rate_limit_sid: str, offset: int, count: int
) -> tuple[list[Bucket], int]:
    key = constants.RATE_LIMIT_BUCKETS_PREFIX + rate_limit_sid
    total = int(await redis.zcard(key))
    sids = await redis.zrange(key, offset, offset + count - 1)
    found = [await get_bucket(redis, rate_limit_sid, s.decode()) for s in sids]
    return [b for b in found if b is not None], total


async def update_bucket(redis: Redis, bucket: Bucket) -> bool:
    key = constants.BUCKET_PREFIX + bucket.sid
    return bool(await redis.set(key, bucket.model_dump_json(), xx=True))


async def delete_bucket(redis: Redis, bucket: Bucket) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(constants.BUCKET_PREFIX + bucket.sid)
        pipe.zrem(constants.RATE_LIMIT_BUCKETS_PREFIX + bucket.rate_limit_sid, bucket.sid)
        await pipe.execute()


# ---- enforcement --------------------------------------------------------------------------------

# KEYS: one sliding window per (bucket, value); ARGV[1]: this start's member, then per key its
# max and interval in ms. Every window is checked before any is counted, so a refused start
# counts nowhere. Returns {0, 0} when counted, else {index of the full window, ms until it frees}.
_CONSUME = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  local max = tonumber(ARGV[2 * i])
  local interval = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - interval)
  local count = redis.call('ZCARD', key)
  if count >= max then
    -- the window frees when its (count - max + 1)th oldest start leaves it
    local entry = redis.call('ZRANGE', key, count - max, count - max, 'WITHSCORES')
    return {i, tonumber(entry[2]) + interval - now}
  end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, tonumber(ARGV[2 * i + 1]))
end
return {0, 0}
"""


def _window_key(bucket_sid: str, value: str) -> str:
    # hashed: the value may be PII (a phone number, an IP) and is of any length
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]
    return f"{constants.RATE_WINDOW_PREFIX}{bucket_sid}:{digest}"


async def consume(redis: Redis, service_sid: str, values: dict[str, str]) -> None:
    """Count one start against every bucket of the named rate limits; 429 (20429) when over.

    An unknown unique_name is a 400 (60200, "Invalid parameter: RateLimits"), checked before any
    bucket is counted.
    """
    if not values:
        return
    names = list(values)
    sids = await redis.hmget(constants.RATE_LIMIT_NAMES_PREFIX + service_sid, names)  # type: ignore[misc]
    if any(sid is None for sid in sids):
        raise invalid("RateLimits")
    async with redis.pipeline(transaction=False) as pipe:
        for sid in sids:
            pipe.zrange(constants.RATE_LIMIT_BUCKETS_PREFIX + sid.decode(), 0, -1)
        bucket_lists: list[list[bytes]] = await pipe.execute()
    keys: list[str] = []
    args: list[str] = [secrets.token_hex(8)]
    owners: list[str] = []
    for name, bucket_sids in zip(names, bucket_lists, strict=True):
        if not bucket_sids:
            continue
        raws = await redis.mget([constants.BUCKET_PREFIX + b.decode() for b in bucket_sids])
        for raw in raws:
            if raw is None:  # deleted since the listing
                continue
            bucket = Bucket.model_validate_json(raw)
            keys.append(_window_key(bucket.sid, values[name]))
            args += [str(bucket.max), str(bucket.interval * 1000)]
            owners.append(name)
    if not keys:
        return
    refused, wait_ms = await redis.eval(_CONSUME, len(keys), *keys, *args)  # type: ignore[misc]
    if int(refused) == 0:
        return
    retry_after = max(1, math.ceil(int(wait_ms) / 1000))
    raise TwilioError(
        429,
        20429,
        "Too many requests",
        headers={
            "Retry-After": str(retry_after),
            "Twilio-Reached-Rate-Limit": owners[int(refused) - 1],
        },
    )

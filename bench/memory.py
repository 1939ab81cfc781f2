"""Redis memory per pending verification: INFO used_memory delta over a batch of starts.

Both readings are taken with the worker drained and Redis' client buffers settled (SETTLE_S).

Everything counts (verification hash, destination lock, timeout job and its queue entry, outbox
list and dedupe key, allocator and dict overhead): that is what a pending verification costs.
"""

from __future__ import annotations

import asyncio
import math
import re

from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.engine.store import split_stored

from .client import VerifyClient
from .load import closed_loop
from .numbers import Numbers
from .procs import Procs
from .queue import drain

__all__ = ["memory_per_pending"]

# application or account ids inside key names: uuids, or Twilio-style sids (AC…, VA…)
_TENANT = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[A-Z]{2}[0-9a-f]{32}\b"
)


_STATS = ("clients.normal", "lua.caches", "dataset.bytes")
# Redis frees a client's idle query buffer (16 KB+) after 2 s of idleness (clientsCron); read
# used_memory only then, so the ~150 connections of serve and worker that were just busy do not
# count as per-verification memory (they added 1-2 KB per pending to a 2,000-start batch)
SETTLE_S = 3.0
_DB_STATS = ("overhead.hashtable.main", "overhead.hashtable.expires")


async def _used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


# Keyspace tables grow by doubling: a batch that crosses a power of two pays for a whole new
# bucket array at once (8 bytes x slots, in the main and in the expires table), one that does not
# pays nothing, so the raw delta per pending jumps by ~250 bytes from one run to the next. The
# steady figure replaces what the two tables did during the batch by their average cost per key
# over a doubling cycle: a 24-byte entry plus 8 bytes x 2 ln 2 (1.39 slots per key) of buckets.
TABLE_BYTES_PER_KEY = 24 + 8 * 2 * math.log(2)


async def _keyspace(redis: Redis) -> tuple[int, int]:
    """(keys, keys with a TTL) in db 0."""
    db = (await redis.info("keyspace")).get("db0") or {}
    return int(db.get("keys", 0)), int(db.get("expires", 0))


async def _clients(redis: Redis) -> int:
    return int((await redis.info("clients"))["connected_clients"])


async def _stats(redis: Redis) -> dict[str, int]:
    raw = await redis.memory_stats()
    out = {k: int(raw[k]) for k in _STATS if isinstance(raw.get(k), int)}
    db = raw.get("db.0")
    if isinstance(db, dict):
        out.update({k: int(db[k]) for k in _DB_STATS if isinstance(db.get(k), int)})
    return out


async def memory_per_pending(
    api: VerifyClient,
    redis: Redis,
    procs: Procs,
    numbers: Numbers,
    n: int,
    concurrency: int,
) -> dict[str, object]:
    await drain(redis, procs)
    unsettled_before = await _used_memory(redis)
    await asyncio.sleep(SETTLE_S)
    before, keys_before = await _used_memory(redis), int(await redis.dbsize())
    space_before = await _keyspace(redis)
    clients_before = await _clients(redis)
    stats_before = await _stats(redis)
    started: list[tuple[str, str]] = []

    async def op() -> str:
        to = numbers.next()
        status, request_id = await api.start(to)
        if request_id is not None:
            started.append((request_id, to))
        return str(status)

    result = await closed_loop(op, concurrency=concurrency, ok={"202"}, count=n)
    drained = await drain(redis, procs)
    unsettled_after = await _used_memory(redis)
    await asyncio.sleep(SETTLE_S)
    after, keys_after = await _used_memory(redis), int(await redis.dbsize())
    space_after = await _keyspace(redis)
    clients_after = await _clients(redis)
    stats_after = await _stats(redis)
    pending = len(started)
    tables = {k: stats_after.get(k, 0) - stats_before.get(k, 0) for k in _DB_STATS}
    new_keys = (space_after[0] - space_before[0]) + (space_after[1] - space_before[1])
    steady = after - before - sum(tables.values()) + new_keys * TABLE_BYTES_PER_KEY
    out: dict[str, object] = {
        "n": pending,
        "errors": result.errors,
        "used_memory_delta": after - before,
        "keys_per_pending": round((keys_after - keys_before) / pending, 2) if pending else None,
        # keyspace tables at their average cost per key (see TABLE_BYTES_PER_KEY)
        "bytes_per_pending": round(steady / pending) if pending else None,
        # the plain used_memory delta: lumpy, a table doubling inside the batch adds ~250
        "bytes_per_pending_raw": round((after - before) / pending) if pending else None,
        # the same, read at once after each drain (the figure before SETTLE_S was added): it
        # also counts the query buffers of the connections that were just busy
        "bytes_per_pending_unsettled": (
            round((unsettled_after - unsettled_before) / pending) if pending else None
        ),
        "drain": drained,
        # where the delta went: keyspace tables double in steps (a doubling inside the batch
        # adds ~8 bytes x table size at once), client buffers come and go
        "memory_stats_delta": {k: stats_after[k] - v for k, v in stats_before.items()},
        "keys_before": keys_before,
        # connections opened during the batch (a worker running more jobs at once) are in the
        # delta too: on Redis 6 their query buffers (16 KB+ each) count as dataset, not clients
        "connected_clients": [clients_before, clients_after],
    }
    if started:
        out["one_verification"] = await _breakdown(redis, *started[0])
    return out


async def _breakdown(redis: Redis, request_id: str, to: str) -> dict[str, object]:
    """MEMORY USAGE (SAMPLES 0) of every key that names this verification or its destination.

    Found by SCAN rather than rebuilt from today's key layout, which other work keeps changing.
    """
    keys: set[bytes] = set()
    for pattern in (f"*{request_id}*", f"*:{to}"):
        async for key in redis.scan_iter(match=pattern, count=5000):
            keys.add(key)
    sizes: dict[str, int | None] = {}
    for key in sorted(keys):
        usage = await redis.memory_usage(key, samples=0)
        label = _TENANT.sub(
            "{tenant}", key.decode().replace(request_id, "{id}").replace(to, "{to}")
        )
        sizes[label] = None if usage is None else int(usage)
    ver = constants.VERIFICATION_PREFIX + request_id
    encoding = await redis.object("encoding", ver)
    stored = await redis.get(ver)
    state_len = len(split_stored(stored)[1]) if stored is not None else 0
    ver_usage = await redis.memory_usage(ver, samples=0)
    return {
        "verification_hash_bytes": None if ver_usage is None else int(ver_usage),
        "memory_usage_bytes": sizes,
        "sum_bytes": sum(v for v in sizes.values() if v is not None),
        "verification_hash_encoding": encoding.decode()
        if isinstance(encoding, bytes)
        else encoding,
        "state_json_bytes": int(state_len),
        "queue_entries": "plus one arq:queue sorted-set member (the timeout job), not a key",
    }

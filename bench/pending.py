"""Sequential start latency (POST → 202) with 1 k, 100 k (and 1 M) verifications pending in Redis.

The pending verifications are synthetic but realistic: the stored value of a real pending
verification ("<version>:<state JSON>"; the destination replaced, the request id is in the key)
plus its destination lock key, with the same TTLs, written server-side by a Lua loop in chunks
(so a million takes seconds, not HTTP). They have no step-timeout job in the queue. They are
deleted again at the end of the phase.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.engine.store import PENDING_TTL_MS, split_stored

from .client import VerifyClient
from .numbers import Numbers
from .procs import BenchError
from .queue import drain
from .stack import Stack
from .stats import summary_ms

__all__ = ["start_by_pending"]

CHUNK = 20_000
TO = "@@TO@@"
SYNTH_PREFIX = "bbbbbbbb-0000-4000-8000-"  # request ids SYNTH_PREFIX + 12 digits
SYNTH_TO = "1555"  # destinations 1555 + 7 digits: never issued by Numbers

_FILL = """
local tpl, ver_prefix, active_prefix = ARGV[1], ARGV[2], ARGV[3]
local version, hash_ttl, lock_ttl = ARGV[4], ARGV[5], ARGV[6]
local first, last, mode = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
for i = first, last do
  local rid = string.format("bbbbbbbb-0000-4000-8000-%012d", i)
  local to = string.format("1555%07d", i)
  if mode == "fill" then
    local s = string.gsub(tpl, "@@TO@@", to)
    redis.call("SET", ver_prefix .. rid, version .. ":" .. s, "PX", hash_ttl)
    redis.call("SET", active_prefix .. to, rid, "PX", lock_ttl)
  else
    redis.call("UNLINK", ver_prefix .. rid, active_prefix .. to)
  end
end
return last - first + 1
"""


async def _template(redis: Redis, api: VerifyClient, numbers: Numbers) -> tuple[str, str, str]:
    """(state JSON template, version, tenant) from one real pending verification."""
    to = numbers.next()
    status, rid = await api.start(to)
    if rid is None:
        raise BenchError(f"template start answered {status}")
    raw = await redis.get(constants.VERIFICATION_PREFIX + rid)
    if raw is None:
        raise BenchError("the template verification is not in Redis")
    version_number, state_bytes = split_stored(raw)
    state, version = state_bytes.decode(), str(version_number)
    if to not in state:
        raise BenchError("destination not found in the state JSON")
    locks = [k.decode() async for k in redis.scan_iter(f"{constants.ACTIVE_PREFIX}*:{to}")]
    if len(locks) != 1:
        raise BenchError(f"expected one destination lock for {to}, found {locks}")
    tenant = locks[0][len(constants.ACTIVE_PREFIX) : -len(to) - 1]
    # the request id is in the key only; the state JSON names the destination
    return state.replace(to, TO), version, tenant


async def start_by_pending(
    stack: Stack,
    api: VerifyClient,
    floor: VerifyClient,
    numbers: Numbers,
    levels: tuple[int, ...],
    n: int,
) -> dict[str, object]:
    redis = stack.redis
    template, version, tenant = await _template(redis, api, numbers)
    fill = redis.register_script(_FILL)

    async def run(first: int, last: int, mode: str) -> None:
        for lo in range(first, last + 1, CHUNK):
            hi = min(last, lo + CHUNK - 1)
            await fill(
                args=[
                    template, constants.VERIFICATION_PREFIX, f"{constants.ACTIVE_PREFIX}{tenant}:",
                    version, PENDING_TTL_MS, PENDING_TTL_MS, lo, hi, mode,
                ]
            )  # fmt: skip

    async def timed(client: VerifyClient, status_ok: int) -> dict[str, object]:
        ms: list[float] = []
        errors = 0
        for _ in range(n):
            t0 = time.perf_counter()
            status, _ = await client.start(numbers.next())
            if status == status_ok:
                ms.append((time.perf_counter() - t0) * 1000)
            else:
                errors += 1
        out: dict[str, object] = dict(summary_ms(ms))
        out["errors"] = errors
        return out

    out: dict[str, object] = {
        "state_json_bytes": len(template),
        "floor_sequential": await timed(floor, 202),
    }
    by_level: dict[str, object] = {}
    real = await _count(redis)  # real pending verifications, the template's included
    filled = 0
    try:
        for level in levels:
            # the real pending verifications already there count toward the level
            target = max(0, level - real)
            t0 = time.perf_counter()
            if target > filled:
                await run(filled, target - 1, "fill")
                filled = target
            fill_s = time.perf_counter() - t0
            await drain(redis, stack.procs)
            result = await timed(api, 202)
            result["pending_before"] = real + filled
            real += n
            result["fill_s"] = round(fill_s, 2)
            by_level[str(level)] = result
            await drain(redis, stack.procs)
    finally:
        t0 = time.perf_counter()
        if filled:
            await run(0, filled - 1, "delete")
        out["cleanup_s"] = round(time.perf_counter() - t0, 2)
    out["by_pending"] = by_level
    if filled:  # the lowest level again, synthetic ones gone: tells drift from noise
        await drain(redis, stack.procs)
        out["after_cleanup"] = await timed(api, 202)
    return out


async def _count(redis: Redis) -> int:
    """Verifications in Redis (all pending here: none has ended before this phase)."""
    n = 0
    async for _ in redis.scan_iter(f"{constants.VERIFICATION_PREFIX}*", count=10_000):
        n += 1
    return n

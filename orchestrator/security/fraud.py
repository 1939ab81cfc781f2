"""The fraud guard on verification starts: send limits, an adaptive per-country budget against
SMS pumping, and per-tenant geo permissions. One Lua call decides and counts each start; for a
new verification it is the same call as its commit (`Store.create(..., guard)`), so a start
refused for any reason — the guard's own refusals or a busy destination — counts nowhere.

What a start must pass, in this order (the first refusal wins; a refused start counts nowhere):

1. **Geo permissions** — when a tenant (a Vonage application or a Twilio service) has an
   allow-list of country calling codes, every phone destination must be in it
   (`errors.Blocked("geo")`: Vonage 403 Forbidden, Twilio 403 60605).
2. **Per-destination and per-client-IP windows** — at most `fraud_number_limit` starts per
   destination per tenant, and `fraud_ip_limit` starts per calling IP, in sliding windows
   (`errors.Throttled`: Vonage 429 Rate Limit Hit, Twilio 429 20429).
3. **Adaptive prefix budget** — per tenant and country calling code, the starts of the current
   bucket (an hour by default) may reach `max(floor, multiplier x peak)`, where `peak` is the
   most completions that tenant saw for that code in one bucket over the last
   `fraud_prefix_window_buckets` buckets (a day by default, the current bucket included). A
   burst of starts to a prefix that never converts stops at the floor; established traffic,
   whose users complete their verifications, flows (`errors.Blocked("fraud")`: Vonage 403
   Forbidden, Twilio 403 60410). Vonage's `fraud_check: false` / Twilio's `RiskCheck=disable`
   skip this budget only when the tenant's policy allows the bypass.

Completions feed the budget from the API handlers that complete a verification
(`record_completion`). Starts and completions are counted per bucket in one hash per tenant and
calling code; the peak is used rather than the mean so that daily peaks of real traffic fit.

The tenant policy lives in its own hash (`FRAUD_POLICY_PREFIX + tenant`), set by
`verify-orchestrator apps update --geo-allow/--allow-fraud-bypass` and `services update`.
Destinations and IPs are hashed in key names: they are personal data.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
from redis.asyncio import Redis

from orchestrator import constants, metrics
from orchestrator.domain import errors
from orchestrator.domain.models import Channel, Verification
from orchestrator.engine.luascripts import registered
from orchestrator.phone import is_sandbox_number
from orchestrator.settings import Settings

__all__ = [
    "FraudPolicy",
    "StartGuard",
    "calling_code",
    "get_policy",
    "record_completion",
    "run_guard",
    "set_policy",
    "start_guard",
    "verification_targets",
]

log = logging.getLogger("orchestrator.fraud")


def calling_code(msisdn: str) -> str:
    """The country calling code of an E.164 number without '+' ("44", "1", "990" for the
    sandbox's virtual operator); unparseable numbers fall back to their first three digits."""
    if is_sandbox_number(msisdn):
        return "990"
    # calling codes are prefix-free (no code starts another), so the first 1-3 digits that are
    # a known code are the number's: what phonenumbers.parse finds, without parsing the rest
    for length in (1, 2, 3):
        prefix = msisdn[:length]
        if prefix.isdigit() and int(prefix) in COUNTRY_CODE_TO_REGION_CODE:
            return prefix
    return msisdn[:3]


@dataclass(frozen=True)
class FraudPolicy:
    """A tenant's switches: the allowed calling codes (empty: every country) and whether a
    request may skip the adaptive budget."""

    geo_allow: tuple[str, ...] = ()
    bypass_allowed: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "geo_allow": list(self.geo_allow) or None,
            "fraud_bypass_allowed": self.bypass_allowed,
        }


def parse_geo(value: str) -> tuple[str, ...]:
    """ "44,1, +33" -> ("1", "33", "44"); "", "all" or "*" -> () (every country allowed)."""
    text = value.strip().lower()
    if text in {"", "all", "*"}:
        return ()
    codes: set[str] = set()
    for part in text.split(","):
        code = part.strip().removeprefix("+")
        if not code.isascii() or not code.isdigit() or not 1 <= len(code) <= 4:
            raise ValueError(f"not a country calling code: {part.strip()!r}")
        codes.add(code)
    return tuple(sorted(codes, key=lambda c: (len(c), c)))


async def get_policy(redis: Redis, tenant: str) -> FraudPolicy:
    raw = await redis.hgetall(constants.FRAUD_POLICY_PREFIX + tenant)  # type: ignore[misc]
    data = {k.decode(): v.decode() for k, v in raw.items()}
    geo = tuple(c for c in data.get("geo", "").split(",") if c)
    return FraudPolicy(geo_allow=geo, bypass_allowed=data.get("bypass") == "1")


async def set_policy(
    redis: Redis,
    tenant: str,
    *,
    geo_allow: tuple[str, ...] | None = None,
    bypass_allowed: bool | None = None,
) -> FraudPolicy:
    """Change the given switches (None: leave as is) and return the whole policy."""
    key = constants.FRAUD_POLICY_PREFIX + tenant
    if geo_allow is not None:
        if geo_allow:
            await redis.hset(key, "geo", ",".join(geo_allow))  # type: ignore[misc]
        else:
            await redis.hdel(key, "geo")  # type: ignore[misc]
    if bypass_allowed is not None:
        await redis.hset(key, "bypass", "1" if bypass_allowed else "")  # type: ignore[misc]
    return await get_policy(redis, tenant)


# guard(KEYS, plan, proceed): KEYS[1] the tenant policy hash, then the window keys, then the
# prefix hashes; `plan` {member, windows: [[limit, window_ms, scope]...], codes: [...] (one per
# prefix hash, in KEYS order), bypass, floor, multiplier, bucket_ms, buckets[, now]}; `now` (ms)
# is for tests, else Redis's clock decides, so that every process agrees on the buckets.
# `proceed()` runs once the start is allowed and before it is counted: the start's own commit
# (see Store.create), whose refusal ({'conflict'}, {'taken', holder}) is returned uncounted.
# Returns {"ok", 0, bypassed}, {scope, retry_after_ms, calling code or ""} or proceed's refusal.
GUARD_LUA = """
local function guard(KEYS, plan, proceed)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if plan.now then now = tonumber(plan.now) end
  local nwin = #plan.windows
  local geo = redis.call('HGET', KEYS[1], 'geo')
  if geo and geo ~= '' then
    local allowed = {}
    for code in string.gmatch(geo, '[^,]+') do allowed[code] = true end
    for _, code in ipairs(plan.codes) do
      if not allowed[code] then return {'geo', 0, code} end
    end
  end
  for i = 1, nwin do
    local key = KEYS[1 + i]
    local limit = tonumber(plan.windows[i][1])
    local window = tonumber(plan.windows[i][2])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local count = redis.call('ZCARD', key)
    if count >= limit then
      local entry = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
      return {plan.windows[i][3], tonumber(entry[2]) + window - now, ''}
    end
  end
  local bypassed = 0
  local bucket = math.floor(now / plan.bucket_ms)
  local budgeted = plan.floor > 0
  if budgeted and plan.bypass and redis.call('HGET', KEYS[1], 'bypass') == '1' then
    budgeted = false
    bypassed = 1
  end
  if budgeted then
    local fields = {}
    for b = bucket - plan.buckets + 1, bucket do fields[#fields + 1] = 'c' .. b end
    for i, code in ipairs(plan.codes) do
      local key = KEYS[1 + nwin + i]
      local peak = 0
      for _, v in ipairs(redis.call('HMGET', key, unpack(fields))) do
        local n = tonumber(v) or 0
        if n > peak then peak = n end
      end
      local budget = math.max(plan.floor, math.floor(plan.multiplier * peak))
      local started = tonumber(redis.call('HGET', key, 's' .. bucket)) or 0
      if started >= budget then
        return {'prefix', (bucket + 1) * plan.bucket_ms - now, code}
      end
    end
  end
  local proceeded = proceed()
  if proceeded[1] ~= 'ok' then return proceeded end
  for i = 1, nwin do
    local key = KEYS[1 + i]
    redis.call('ZADD', key, now, plan.member)
    redis.call('PEXPIRE', key, tonumber(plan.windows[i][2]))
  end
  if budgeted then
    local ttl = (plan.buckets + 1) * plan.bucket_ms
    for i, _ in ipairs(plan.codes) do
      local key = KEYS[1 + nwin + i]
      redis.call('HINCRBY', key, 's' .. bucket, 1)
      redis.call('PEXPIRE', key, ttl)
      -- drop buckets that left the window, once the hash holds more than the window needs
      if redis.call('HLEN', key) > 2 * plan.buckets + 4 then
        for _, field in ipairs(redis.call('HKEYS', key)) do
          local b = tonumber(string.sub(field, 2))
          if b and b <= bucket - plan.buckets then redis.call('HDEL', key, field) end
        end
      end
    end
  end
  return {'ok', 0, bypassed}
end
"""

# the guard on its own (a Twilio resend: no new verification to commit); ARGV[1]: the plan
_CHECK = GUARD_LUA + "return guard(KEYS, cjson.decode(ARGV[1]), function() return {'ok'} end)"

# KEYS: prefix hashes; ARGV: bucket_ms, buckets[, now ms (tests)]
_COMPLETE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] then now = tonumber(ARGV[3]) end
local bucket = math.floor(now / tonumber(ARGV[1]))
local ttl = (tonumber(ARGV[2]) + 1) * tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'c' .. bucket, 1)
  redis.call('PEXPIRE', key, ttl)
end
return 1
"""


def _cc_key(tenant: str, code: str) -> str:
    return f"{constants.FRAUD_CC_PREFIX}{tenant}:{code}"


def verification_targets(v: Verification) -> tuple[list[str], list[str]]:
    """(distinct destinations, distinct calling codes of its phone destinations)."""
    destinations = [d.lower() for d in v.destinations()]
    codes: list[str] = []
    for step in v.steps:
        if step.channel is Channel.EMAIL:
            continue
        code = calling_code(step.to)
        if code not in codes:
            codes.append(code)
    return destinations, codes


@dataclass(frozen=True)
class StartGuard:
    """One start's fraud check, ready to run: on its own (`run_guard`) or in the same Lua call
    as the start's commit (`Store.create(..., guard=...)`), which then counts the start only if
    the commit succeeds. `lua` defines `guard(KEYS, plan, proceed)`."""

    dialect: str
    keys: list[str]
    plan: str
    lua: str = GUARD_LUA

    def outcome(self, result: list[object]) -> None:
        """Read the guard's answer: count a bypass, or raise Blocked / Throttled."""
        outcome = _text(result[0])
        if outcome == "ok":
            if len(result) > 2 and int(_text(result[2])):
                metrics.FRAUD_BYPASSES.labels(self.dialect).inc()
            return
        detail = _text(result[2])
        metrics.FRAUD_BLOCKS.labels(self.dialect, outcome).inc()
        if outcome == "geo":
            raise errors.Blocked("geo", detail)
        if outcome == "prefix":
            log.warning(
                "fraud guard: %s start to +%s blocked (prefix budget spent)", self.dialect, detail
            )
            raise errors.Blocked("fraud", detail)
        retry_after = max(1, -(-int(_text(result[1])) // 1000))
        raise errors.Throttled(outcome, retry_after)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def start_guard(
    settings: Settings,
    *,
    dialect: str,
    tenant: str,
    destinations: Iterable[str],
    codes: Iterable[str],
    client_ip: str | None,
    bypass_requested: bool,
    now_ms: int | None = None,
) -> StartGuard | None:
    """The check one start must pass (None: the guard is off).

    `destinations` may be empty (a Twilio resend: its verification's own send limit applies).
    """
    if not settings.fraud_enabled:
        return None
    keys = [constants.FRAUD_POLICY_PREFIX + tenant]
    windows: list[list[object]] = []
    if settings.fraud_number_limit > 0:
        window_ms = settings.fraud_number_window_seconds * 1000
        for d in dict.fromkeys(destinations):
            # tenant and destination in one digest: a key name half as long, per number
            keys.append(
                f"{constants.FRAUD_WINDOW_PREFIX}n:{constants.hashed_key_part(tenant + ':' + d)}"
            )
            windows.append([settings.fraud_number_limit, window_ms, "number"])
    if settings.fraud_ip_limit > 0 and client_ip:
        keys.append(f"{constants.FRAUD_WINDOW_PREFIX}ip:{constants.hashed_key_part(client_ip)}")
        windows.append([settings.fraud_ip_limit, settings.fraud_ip_window_seconds * 1000, "ip"])
    code_list = list(dict.fromkeys(codes))
    keys += [_cc_key(tenant, c) for c in code_list]
    plan: dict[str, object] = {
        "member": secrets.token_hex(8),
        "windows": windows,
        "codes": code_list,
        "bypass": bypass_requested,
        "floor": settings.fraud_prefix_floor,
        "multiplier": settings.fraud_prefix_multiplier,
        "bucket_ms": settings.fraud_prefix_bucket_seconds * 1000,
        "buckets": settings.fraud_prefix_window_buckets,
    }
    if now_ms is not None:
        plan["now"] = now_ms
    return StartGuard(dialect=dialect, keys=keys, plan=json.dumps(plan))


async def run_guard(redis: Redis, guard: StartGuard | None) -> None:
    """Decide and count a start on its own (a Twilio resend: nothing to commit alongside); raise
    Blocked or Throttled when refused (counted nowhere). None: the guard is off."""
    if guard is None:
        return
    guard.outcome(await registered(redis, _CHECK)(keys=guard.keys, args=[guard.plan]))


async def record_completion(
    redis: Redis, settings: Settings, v: Verification, now_ms: int | None = None
) -> None:
    """A verification completed: count it for its calling codes' budgets and in metrics.

    Called by the API handlers after the completing commit; a failure here is logged, never
    turned into an error for a verification that did complete.
    """
    step = v.step
    metrics.COMPLETED.labels(v.dialect, step.channel.value if step else "unknown").inc()
    if not settings.fraud_enabled or settings.fraud_prefix_floor <= 0:
        return
    _, codes = verification_targets(v)
    if not codes:
        return
    try:
        await registered(redis, _COMPLETE)(
            keys=[_cc_key(v.tenant, c) for c in codes],
            args=[
                str(settings.fraud_prefix_bucket_seconds * 1000),
                str(settings.fraud_prefix_window_buckets),
                *([] if now_ms is None else [str(now_ms)]),
            ],
        )
    except Exception as exc:
        log.warning("fraud guard: completion not counted: %s", type(exc).__name__)

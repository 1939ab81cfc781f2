"""The one place that writes verification state: a transition and its effects, in one Redis step.

`commit` runs a Lua script that compares the stored version, writes the new state and applies every
effect (arq jobs to enqueue or drop, webhook messages, destination locks) atomically, so a crash
can neither lose a step nor send one twice. Concurrent writers retry on a version conflict, which
also serializes code checks: no race lets a fourth wrong code through.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from orchestrator import constants
from orchestrator.domain import errors
from orchestrator.domain.effects import (
    CancelTimeout,
    Effect,
    Emit,
    ReleaseDestinations,
    ScheduleTimeout,
    SendStep,
)
from orchestrator.domain.models import Status, Verification
from orchestrator.domain.transition import Refused, Transition
from orchestrator.engine import jobs
from orchestrator.engine.luascripts import registered
from orchestrator.redisconn import Replication

__all__ = ["CommitGuard", "Store", "WebhookRenderer", "message_id", "split_stored"]

# the body of the webhook message for an Emit; None: this dialect sends nothing for it
WebhookRenderer = Callable[[Verification, Emit], dict[str, Any] | None]

# a pending verification can live at most 3 steps x 900 s; keep it a while longer than that
PENDING_TTL_MS = 2 * 3600 * 1000
WEBHOOK_TTL_MS = 4 * 86400 * 1000
MAX_RETRIES = 50
_NOT_STORED = {"request_id"}

_COMMIT = """
local plan = cjson.decode(ARGV[1])
local stored = redis.pcall('GET', plan.key)
local current
if type(stored) == 'table' and stored.err then
  -- a verification written as a hash {v, s} before the string format: its version
  current = redis.call('HGET', plan.key, 'v')
else
  current = stored and string.match(stored, '^(%d+):')
end
if plan.expect == '0' then
  if stored then return {'conflict'} end
elseif current ~= plan.expect then
  return {'conflict'}
end
for _, key in ipairs(plan.absent) do
  local holder = redis.call('GET', key)
  if holder then return {'taken', holder} end
end
redis.call('SET', plan.key, plan.version .. ':' .. ARGV[2], 'PX', plan.ttl)
for _, op in ipairs(plan.ops) do
  local name = op[1]
  if name == 'set' then
    redis.call('SET', op[2], op[3], 'PX', op[4])
  elseif name == 'setnx' then
    redis.call('SET', op[2], op[3], 'PX', op[4], 'NX')
  elseif name == 'zadd' then
    redis.call('ZADD', op[2], op[3], op[4])
  elseif name == 'zrem' then
    redis.call('ZREM', op[2], op[3])
  elseif name == 'del' then
    redis.call('DEL', op[2])
  elseif name == 'del_if' then
    if redis.call('GET', op[2]) == op[3] then redis.call('DEL', op[2]) end
  elseif name == 'hset' then
    redis.call('HSET', op[2], unpack(op[4]))
    redis.call('PEXPIRE', op[2], op[3])
  elseif name == 'publish' then
    redis.call('PUBLISH', op[2], op[3])
  end
end
return {'ok'}
"""


class CommitGuard(Protocol):
    """A check a new verification must pass in the same Lua call as its commit (the fraud
    guard's `StartGuard`): `lua` defines `guard(KEYS, plan, proceed)`, which refuses, or calls
    `proceed()` (the commit) and then counts what it allowed; `outcome` reads its answer and
    raises the refusal."""

    @property
    def keys(self) -> list[str]: ...

    @property
    def plan(self) -> str: ...

    @property
    def lua(self) -> str: ...

    def outcome(self, result: list[object]) -> None: ...


@functools.cache
def _guarded(guard_lua: str) -> str:
    """The commit script run as the `proceed` of a guard: ARGV[1], ARGV[2] as for the commit,
    ARGV[3] the guard's plan, KEYS the guard's keys."""
    return (
        guard_lua
        + "local function commit()\n"
        + _COMMIT
        + "\nend\nreturn guard(KEYS, cjson.decode(ARGV[3]), commit)\n"
    )


def split_stored(raw: bytes) -> tuple[int, bytes]:
    """A stored verification, "<version>:<state JSON>", as (version, JSON); the JSON has every
    field not at its default except the request id (`Store.load` restores both)."""
    version, _, state = raw.partition(b":")
    return int(version), state


def _with_request_id(state: bytes, request_id: str) -> bytes:
    """The stored JSON leaves out the request id (it is in the key); put it back in front."""
    if state.startswith(b'{"request_id"'):
        return state  # stored before the id was left out
    return b'{"request_id":' + json.dumps(request_id).encode() + b"," + state[1:]


def message_id(request_id: str, seq: int) -> str:
    """Webhook message ids are derived, so a repeated commit can never mint a second message."""
    return f"msg_{request_id.replace('-', '')}_{seq}"


class Store:
    def __init__(
        self,
        redis: Redis,
        render_webhook: WebhookRenderer,
        retention_seconds: int,
        replication: Replication | None = None,
    ) -> None:
        self.redis = redis
        # VERIFY_REDIS_WAIT_REPLICAS: a start returns only once that many replicas have it
        self._replication = replication
        self._render = render_webhook
        self._retention_ms = retention_seconds * 1000
        self._commit = redis.register_script(_COMMIT)

    @staticmethod
    def key(request_id: str) -> str:
        return constants.VERIFICATION_PREFIX + request_id

    @staticmethod
    def active_key(tenant: str, destination: str) -> str:
        return f"{constants.ACTIVE_PREFIX}{tenant}:{destination.lower()}"

    async def load(self, request_id: str) -> tuple[Verification, int] | None:
        key = self.key(request_id)
        try:
            raw = await self.redis.get(key)
        except ResponseError:
            # written as a hash {v, s} by a version before the string format
            fields = await self.redis.hmget(key, ["v", "s"])  # type: ignore[misc]
            if fields[0] is None or fields[1] is None:
                return None
            return Verification.model_validate_json(fields[1]), int(fields[0])
        if raw is None:
            return None
        return self.parse(request_id, raw)

    @staticmethod
    def parse(request_id: str, raw: bytes) -> tuple[Verification, int]:
        """A stored verification value (as `load` reads it) as (state, version)."""
        version, state = split_stored(raw)
        return Verification.model_validate_json(_with_request_id(state, request_id)), version

    async def create(self, t: Transition, now: datetime, guard: CommitGuard | None = None) -> None:
        """Store a new verification; DestinationBusy if one of its destinations is taken.

        With a `guard`, the guard's check, this commit and the guard's counting of it are one
        Lua call: one round trip, and a start refused for any reason is counted nowhere."""
        v = t.state
        absent = [self.active_key(v.tenant, d) for d in v.destinations()]
        ops = [["set", k, v.request_id, str(PENDING_TTL_MS)] for k in absent]
        if self._replication is None:
            result = await self._run(t, 0, now, absent=absent, extra_ops=ops, guard=guard)
        else:
            # WAIT counts the replicas that have this connection's writes: commit and WAIT on
            # one connection. Too few in time: NotReplicated (a retryable 503), and the start
            # stays committed on the primary (see the README's HA section)
            async with self.redis.client() as connection:
                result = await self._run(t, 0, now, absent, ops, guard, connection)
                if result[0] not in ("taken", "conflict"):
                    await self._replication.confirm(connection)
        if result[0] == "taken":
            raise errors.DestinationBusy(result[1])
        if result[0] == "conflict":
            raise errors.Conflict("request id collision")
        if guard is not None:
            guard.outcome(list(result))

    async def apply(
        self,
        request_id: str,
        tenant: str | None,
        step: Callable[[Verification], Transition],
        now: datetime,
    ) -> Transition:
        """Load, transition and commit, retrying on concurrent writes. `tenant` None: any owner."""
        for _ in range(MAX_RETRIES):
            loaded = await self.load(request_id)
            if loaded is None or (tenant is not None and loaded[0].tenant != tenant):
                raise errors.NotFound(request_id)
            v, version = loaded
            refused: Refused | None = None
            try:
                t = step(v)
            except Refused as exc:
                t, refused = exc.transition, exc
            result = await self._run(t, version, now)
            if result[0] == "ok":
                if refused is not None:
                    raise refused.error
                return t
        raise errors.Conflict("too much contention on this verification")

    async def _run(
        self,
        t: Transition,
        expect: int,
        now: datetime,
        absent: list[str] | None = None,
        extra_ops: list[list[Any]] | None = None,
        guard: CommitGuard | None = None,
        client: Redis | None = None,
    ) -> list[str]:
        v = t.state
        ended = v.status is not Status.PENDING
        plan = {
            "key": self.key(v.request_id),
            "expect": str(expect),
            "version": str(expect + 1),
            "ttl": str(self._retention_ms if ended else PENDING_TTL_MS),
            "absent": absent or [],
            "ops": (extra_ops or []) + self._ops(v, t.effects, now),
        }
        # the state goes as its own argument: nested in the plan, its JSON would be escaped
        # (and grow) on the way in and decoded by cjson for nothing. Fields at their defaults
        # are left out and restored by loading, and so is the request id (the key has it): 420
        # instead of 820 bytes for an SMS start.
        # COUPLING: changing a field's default changes stored verifications that omit it.
        state = v.model_dump_json(exclude_defaults=True, exclude=_NOT_STORED)
        if guard is None:
            result = await self._commit(args=[json.dumps(plan), state], client=client)
        else:
            script = registered(self.redis, _guarded(guard.lua))
            args = [json.dumps(plan), state, guard.plan]
            result = await script(keys=guard.keys, args=args, client=client)
        return [r.decode() if isinstance(r, bytes) else str(r) for r in result]

    def _ops(self, v: Verification, effects: list[Effect], now: datetime) -> list[list[Any]]:
        now_ms = int(now.timestamp() * 1000)
        ops: list[list[Any]] = []
        wake = False
        rid = v.request_id
        for effect in effects:
            match effect:
                case SendStep(step=i, sealed_code=sealed):
                    ops += _enqueue(
                        jobs.SEND_STEP, [rid, i, sealed], jobs.send_job_id(rid, i), now_ms, now_ms
                    )
                    wake = True
                case ScheduleTimeout(step=i, at=at):
                    due = int(at.timestamp() * 1000)
                    ops += _enqueue(
                        jobs.STEP_TIMEOUT, [rid, i], jobs.timeout_job_id(rid, i), due, now_ms
                    )
                case CancelTimeout(step=i):
                    job_id = jobs.timeout_job_id(rid, i)
                    ops.append(["zrem", jobs.QUEUE, job_id])
                    ops.append(["del", jobs.job_key(job_id)])
                case Emit():
                    rendered = self._render(v, effect)
                    if rendered is None:
                        continue
                    mid = message_id(rid, effect.seq)
                    body = json.dumps(rendered, separators=(",", ":"))
                    fields = [
                        "tenant",
                        v.tenant,
                        "request_id",
                        rid,
                        "body",
                        body,
                        "kind",
                        effect.kind,
                        "created_ms",
                        str(now_ms),
                        "dialect",
                        v.dialect,
                    ]
                    ops.append(
                        ["hset", constants.WEBHOOK_PREFIX + mid, str(WEBHOOK_TTL_MS), fields]
                    )
                    ops += _enqueue(
                        jobs.DELIVER_WEBHOOK, [mid, 1], jobs.webhook_job_id(mid, 1), now_ms, now_ms
                    )
                    wake = True
                case ReleaseDestinations():
                    for d in v.destinations():
                        ops.append(["del_if", self.active_key(v.tenant, d), rid])
        if wake:
            ops.append(["publish", constants.WAKE_CHANNEL, "1"])
        return ops


def _enqueue(
    function: str, args: list[Any], job_id: str, due_ms: int, now_ms: int
) -> list[list[Any]]:
    record = jobs.serialize_job(function, args, now_ms).decode()
    expires = str(max(due_ms - now_ms, 0) + jobs.EXPIRES_EXTRA_MS)
    return [
        ["setnx", jobs.job_key(job_id), record, expires],
        ["zadd", jobs.QUEUE, str(due_ms), job_id],
    ]

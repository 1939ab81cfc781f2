"""What the handoff keeps in Redis: which device session came through it, the code the desktop
collects, and how many links were texted. All of it expires with the silent-auth session."""

from __future__ import annotations

from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.domain import policy
from orchestrator.domain.transition import CodeTools
from orchestrator.handoff import token

__all__ = [
    "MAX_SMS",
    "SMS_COUNT",
    "came_from_handoff",
    "count_sms",
    "note_device",
    "stash_code",
    "take_code",
]

MAX_SMS = 2  # "text me a link" per verification
_VIA = constants.PREFIX + "handoff:via:"
_CODE = constants.PREFIX + "handoff:code:"
SMS_COUNT = constants.PREFIX + "handoff:sms:"


async def note_device(
    redis: Redis, tools: CodeTools, request_id: str, step: int, presented: str
) -> bool:
    """The check URL's first hop saw the phone page's marker: remember it for the callback, so
    the device ends on the phone result page. An invalid marker is ignored (plain behaviour)."""
    if not token.valid(tools, request_id, presented, "phone"):
        return False
    await redis.set(f"{_VIA}{request_id}:{step}", b"1", ex=policy.SA_SESSION_TTL)
    return True


async def came_from_handoff(redis: Redis, request_id: str, step: int) -> bool:
    return bool(await redis.exists(f"{_VIA}{request_id}:{step}"))


async def stash_code(redis: Redis, tools: CodeTools, request_id: str, code: str) -> None:
    """The device's code, sealed, for the desktop (the token holder) to collect; never shown on
    the phone."""
    await redis.set(f"{_CODE}{request_id}", tools.seal(code), ex=policy.SA_SESSION_TTL)


async def take_code(redis: Redis, tools: CodeTools, request_id: str) -> str | None:
    """The stashed code, or None. Kept (not deleted) until it expires: a desktop that reconnects
    its event stream must still resume."""
    sealed = await redis.get(f"{_CODE}{request_id}")
    if sealed is None:
        return None
    try:
        return tools.unseal(bytes(sealed).decode())
    except Exception:  # forged or from another key: as if absent
        return None


async def count_sms(redis: Redis, request_id: str) -> int:
    """One more "text me a link": the running count for the verification."""
    key = f"{SMS_COUNT}{request_id}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, policy.SA_SESSION_TTL * 2)
        count, _ = await pipe.execute()
    return int(count)

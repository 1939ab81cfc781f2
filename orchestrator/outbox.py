"""The sandbox outbox: every message a sandbox provider "sent", kept in Redis for inspection."""

from __future__ import annotations

import json
import re
from typing import Any

from redis.asyncio import Redis

from . import constants
from .luascripts import registered

__all__ = ["OUTBOX_TTL", "append", "destination_key", "list_messages"]

OUTBOX_TTL = 86400
OUTBOX_MAX = 200
_NON_DIGITS = re.compile(r"\D")
_PHONE_LIKE = re.compile(r"^[\s+()\-.0-9]+$")


def destination_key(to: str) -> str:
    """Phone numbers match on their digits (+44 7700… equals 447700…); anything else (emails,
    push factor sids) case-insensitively as written."""
    if _PHONE_LIKE.match(to):
        return _NON_DIGITS.sub("", to)
    return to.strip().lower()


_APPEND = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


async def append(redis: Redis, tenant: str, message: dict[str, Any]) -> bool:
    """Record one message; a second delivery of the same message id is a no-op (False)."""
    seen = f"{constants.OUTBOX_SEEN_PREFIX}{message['id']}"
    key = f"{constants.OUTBOX_PREFIX}{tenant}:{destination_key(str(message['to']))}"
    added = await registered(redis, _APPEND)(
        keys=[seen, key],
        args=[json.dumps(message, separators=(",", ":")), str(OUTBOX_TTL), str(OUTBOX_MAX)],
    )
    return bool(added)


async def list_messages(redis: Redis, tenant: str, to: str) -> list[dict[str, Any]]:
    key = f"{constants.OUTBOX_PREFIX}{tenant}:{destination_key(to)}"
    raw = await redis.lrange(key, 0, OUTBOX_MAX - 1)  # type: ignore[misc]
    return [json.loads(item) for item in raw]

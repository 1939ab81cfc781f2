"""The sandbox outbox: every message a sandbox provider "sent", kept in Redis for inspection."""

from __future__ import annotations

import json
import re
from typing import Any

from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.engine.luascripts import registered

__all__ = ["OUTBOX_TTL", "append", "destination_key", "list_messages", "read_message"]

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


# KEYS[1]: the destination's list. ARGV: message JSON, ttl s, max length, the message's
# '"id":"…"' member. The list itself is the record of what was delivered: a message whose id is
# already in it (a job re-run after its worker died between this call and finishing) is not added
# again. No marker key per message: a pending verification costs one key less.
_APPEND = """
for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if string.find(item, ARGV[4], 1, true) then return 0 end
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[3]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


async def append(redis: Redis, tenant: str, message: dict[str, Any]) -> bool:
    """Record one message; a second delivery of the same message id is a no-op (False)."""
    key = f"{constants.OUTBOX_PREFIX}{tenant}:{destination_key(str(message['to']))}"
    # compact JSON: the id member reads exactly '"id":"…"' in every stored message
    body = json.dumps(message, separators=(",", ":"))
    member = '"id":' + json.dumps(str(message["id"]), separators=(",", ":"))
    added = await registered(redis, _APPEND)(
        keys=[key], args=[body, str(OUTBOX_TTL), str(OUTBOX_MAX), member]
    )
    return bool(added)


async def list_messages(redis: Redis, tenant: str, to: str) -> list[dict[str, Any]]:
    key = f"{constants.OUTBOX_PREFIX}{tenant}:{destination_key(to)}"
    raw = await redis.lrange(key, 0, OUTBOX_MAX - 1)  # type: ignore[misc]
    return [read_message(item) for item in raw]


def read_message(raw: bytes | str) -> dict[str, Any]:
    """One stored message as the outbox API shows it. Verification messages are stored without
    their request id when their id ("<request id>:<step>") carries it: it is put back, second
    as it was."""
    message: dict[str, Any] = json.loads(raw)
    if "request_id" in message or "code" not in message or ":" not in str(message.get("id", "")):
        return message  # kept whole, or not a verification's code message (a push)
    # request ids (UUIDs, VE sids) hold no colon; message ids may ("<rid>:handoff:<n>")
    request_id = str(message["id"]).split(":", 1)[0]
    return {"id": message["id"], "request_id": request_id, **message}

"""One webhook attempt as the console shows it: a field of the message's hash `vo:wh:{id}`.

The worker knows each attempt's outcome and response status but keeps only the last one, and
only once the attempts are exhausted (`attempts`, `last_status`). `record` after each attempt
(`await attempts.record(redis, message_id, attempt, replay, result.outcome, result.status)` in
workers/tasks.py `deliver_webhook`) lets the console list every attempt with its response: one
more round trip per attempt (~3 µs of Redis), written only while the message exists, so a
dropped message leaves no key without a TTL behind. The fields live and expire with the message;
there are at most len(retry schedule) + 1 per replay. The module imports only constants and the
script registry, so the worker pulls nothing of the console in.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.engine.luascripts import registered

__all__ = ["FIELD_PREFIX", "describe", "record", "record_field", "record_value"]

# KEYS[1] the message hash; ARGV field, value. Written only if the message still exists.
_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0
"""

FIELD_PREFIX = "try:"


def record_field(attempt: int, replay: int = 0) -> str:
    """`try:<replay>.<attempt>`, zero-padded so the fields sort in the order they happened."""
    return f"{FIELD_PREFIX}{replay:02d}.{attempt:02d}"


def record_value(at_ms: int, outcome: str, status: int | None) -> str:
    """`<ms> <outcome> <status or ->`: when, what the worker made of it, the HTTP status."""
    return f"{at_ms} {outcome} {status if status is not None else '-'}"


def describe(field: str, value: str) -> str:
    """A recorded attempt as one line: `attempt 2 (replay 1) at 12:00:01.250: retry, 503`."""
    replay_text, _, attempt_text = field[len(FIELD_PREFIX) :].partition(".")
    at, _, rest = value.partition(" ")
    outcome, _, status = rest.partition(" ")
    try:
        when = datetime.fromtimestamp(int(at) / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
        replay, attempt = int(replay_text), int(attempt_text)
    except ValueError:
        return f"{field}: {value}"[:200]
    again = f" (replay {replay})" if replay else ""
    answer = "no response" if status in ("", "-") else status
    return f"attempt {attempt}{again} at {when}: {outcome or '?'}, {answer}"[:200]


async def record(
    redis: Redis,
    message_id: str,
    attempt: int,
    replay: int,
    outcome: str,
    status: int | None,
    at_ms: int | None = None,
) -> None:
    """Keep one attempt's outcome on its message (nothing if the message is gone)."""
    when = at_ms if at_ms is not None else int(time.time() * 1000)
    await registered(redis, _RECORD)(
        keys=[constants.WEBHOOK_PREFIX + message_id],
        args=[record_field(attempt, replay), record_value(when, outcome, status)],
    )

"""Factor and challenge events (`factor.created|verified|deleted`,
`challenge.approved|denied|expired`) for a Verify Service's webhooks.

An event becomes one Twilio-dialect webhook message (`vo:wh:{id}`) plus its first
`deliver_webhook` job, written by one Lua call; for a state change (a challenge approved,
denied or expired, a factor verified) it is the same call as the record's compare-and-set
(`FactorStore.update_challenge(..., event)`), so the change and its event land together or not at
all. That job fans the message out to every
subscribed, enabled webhook of the service, which are then POSTed form-encoded and signed with
the account's auth token (X-Twilio-Signature), exactly like the verification events
(orchestrator/dialects/twilio/webhook_events.py, workers/webhooks.py).

Message ids are derived from the resource and the event (`evt_<sid>_<event>`), so emitting the
same event twice cannot deliver it twice. No subscriber, no message.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.dialects.twilio import webhook_events as twilio_webhooks
from orchestrator.dialects.twilio.wire import tw_date
from orchestrator.engine import jobs
from orchestrator.engine.luascripts import registered
from orchestrator.engine.store import WEBHOOK_TTL_MS
from orchestrator.factors.models import Challenge, Factor

__all__ = [
    "CHALLENGE_EVENTS",
    "EMIT_LUA",
    "FACTOR_EVENTS",
    "PendingEvent",
    "emit",
    "event_message_id",
    "event_params",
    "prepare",
]

FACTOR_EVENTS = ("factor.created", "factor.verified", "factor.deleted")
CHALLENGE_EVENTS = ("challenge.approved", "challenge.denied", "challenge.expired")


def event_message_id(sid: str, event_type: str) -> str:
    return f"evt_{sid}_{event_type.replace('.', '_')}"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def event_params(
    event_type: str, factor: Factor, challenge: Challenge | None = None
) -> dict[str, str]:
    """The form parameters of one event (string values only, None values left out)."""
    subject = challenge.sid if challenge is not None else factor.sid
    params: dict[str, Any] = {
        "uuid": event_message_id(subject, event_type),
        "type": event_type,
        "account_sid": factor.account_sid,
        "service_sid": factor.service_sid,
        "entity_identity": factor.identity,
        "factor_sid": factor.sid,
        "factor_type": factor.factor_type,
        "factor_friendly_name": factor.friendly_name,
        "factor_metadata": _json(factor.metadata) if factor.metadata is not None else None,
    }
    if challenge is not None:
        params.update(
            {
                "challenge_sid": challenge.sid,
                "challenge_details": _json(challenge.details) if challenge.details else None,
                "challenge_hidden_details": (
                    _json(challenge.hidden_details)
                    if challenge.hidden_details is not None
                    else None
                ),
                "challenge_metadata": (
                    _json(challenge.metadata) if challenge.metadata is not None else None
                ),
                "challenge_status": challenge.status,
                "challenge_date_responded": tw_date(challenge.date_responded),
            }
        )
    return {k: str(v) for k, v in params.items() if v is not None}


@dataclass(frozen=True)
class PendingEvent:
    """An event ready to be written: `arg` is what `EMIT_LUA`'s `emit_event` takes (JSON)."""

    message_id: str
    arg: str


# emit_event(ev): write the message hash (unless it exists: ids are derived, an event is written
# once), its first delivery job and a wake-up. ev = {key, fields, ttl, job_key, job, job_ttl,
# queue, job_id, score, channel}
EMIT_LUA = """
local function emit_event(ev)
  if redis.call('EXISTS', ev.key) == 1 then return 0 end
  redis.call('HSET', ev.key, unpack(ev.fields))
  redis.call('PEXPIRE', ev.key, ev.ttl)
  redis.call('SET', ev.job_key, ev.job, 'PX', ev.job_ttl, 'NX')
  redis.call('ZADD', ev.queue, ev.score, ev.job_id)
  redis.call('PUBLISH', ev.channel, '1')
  return 1
end
"""

_EMIT = EMIT_LUA + "return emit_event(cjson.decode(ARGV[1]))"


async def prepare(
    redis: Redis, event_type: str, factor: Factor, challenge: Challenge | None = None
) -> PendingEvent | None:
    """The event as it stands now (call it after changing the record, before writing it); None
    when no enabled webhook of the service subscribes to `event_type`."""
    hooks = await twilio_webhooks.service_webhooks(redis, factor.service_sid)
    if not any(twilio_webhooks.subscribed(wh, event_type) for wh in hooks):
        return None
    params = event_params(event_type, factor, challenge)
    mid = params["uuid"]
    now_ms = int(time.time() * 1000)
    job_id = jobs.webhook_job_id(mid, 1)
    fields = {
        "tenant": factor.service_sid,
        "request_id": challenge.sid if challenge is not None else factor.sid,
        "body": _json(params),
        "kind": event_type,
        "created_ms": str(now_ms),
        "dialect": "twilio",
    }
    arg = {
        "key": constants.WEBHOOK_PREFIX + mid,
        "fields": [x for pair in fields.items() for x in pair],
        "ttl": WEBHOOK_TTL_MS,
        "job_key": jobs.job_key(job_id),
        "job": jobs.serialize_job(jobs.DELIVER_WEBHOOK, [mid, 1], now_ms).decode(),
        "job_ttl": jobs.EXPIRES_EXTRA_MS,
        "queue": jobs.QUEUE,
        "job_id": job_id,
        "score": now_ms,
        "channel": constants.WAKE_CHANNEL,
    }
    return PendingEvent(mid, _json(arg))


async def emit(
    redis: Redis, event_type: str, factor: Factor, challenge: Challenge | None = None
) -> str | None:
    """Write the event's webhook message and its delivery job on their own (creations and
    deletions); the message id, or None when nobody subscribes or it was emitted before."""
    event = await prepare(redis, event_type, factor, challenge)
    if event is None:
        return None
    written = await registered(redis, _EMIT)(args=[event.arg])
    return event.message_id if written else None

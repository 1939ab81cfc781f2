"""Factor and challenge events (`factor.created|verified|deleted`,
`challenge.approved|denied|expired`) for a Verify Service's webhooks.

An event becomes one Twilio-dialect webhook message (`vo:wh:{id}`) plus its first
`deliver_webhook` job, written in one transaction; that job fans the message out to every
subscribed, enabled webhook of the service, which are then POSTed form-encoded and signed with
the account's auth token (X-Twilio-Signature), exactly like the verification events
(orchestrator/twilio_webhooks.py, workers/webhooks.py).

Message ids are derived from the resource and the event (`evt_<sid>_<event>`), so emitting the
same event twice cannot deliver it twice. No subscriber, no message.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from .. import constants, jobs, twilio_webhooks
from ..dialects.twilio import tw_date
from ..store import WEBHOOK_TTL_MS
from .models import Challenge, Factor

__all__ = [
    "CHALLENGE_EVENTS",
    "FACTOR_EVENTS",
    "emit",
    "event_message_id",
    "event_params",
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


async def emit(
    redis: Redis, event_type: str, factor: Factor, challenge: Challenge | None = None
) -> str | None:
    """Commit the event's webhook message and its delivery job; the message id, or None when no
    enabled webhook of the service subscribes to `event_type` (or it was emitted before)."""
    hooks = await twilio_webhooks.service_webhooks(redis, factor.service_sid)
    if not any(twilio_webhooks.subscribed(wh, event_type) for wh in hooks):
        return None
    params = event_params(event_type, factor, challenge)
    mid = params["uuid"]
    key = constants.WEBHOOK_PREFIX + mid
    try:
        return await _commit(redis, key, mid, params, factor, challenge, event_type)
    except WatchError:
        return None  # a concurrent emit of the same event wrote it first


async def _commit(
    redis: Redis,
    key: str,
    mid: str,
    params: dict[str, str],
    factor: Factor,
    challenge: Challenge | None,
    event_type: str,
) -> str | None:
    now_ms = int(time.time() * 1000)
    job_id = jobs.webhook_job_id(mid, 1)
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.watch(key)
        if await pipe.exists(key):
            return None
        pipe.multi()  # type: ignore[no-untyped-call]
        pipe.hset(
            key,
            mapping={
                "tenant": factor.service_sid,
                "request_id": challenge.sid if challenge is not None else factor.sid,
                "body": _json(params),
                "kind": event_type,
                "created_ms": str(now_ms),
                "dialect": "twilio",
            },
        )
        pipe.pexpire(key, WEBHOOK_TTL_MS)
        job = jobs.serialize_job(jobs.DELIVER_WEBHOOK, [mid, 1], now_ms)
        pipe.set(jobs.job_key(job_id), job, px=jobs.EXPIRES_EXTRA_MS, nx=True)
        pipe.zadd(jobs.QUEUE, {job_id: now_ms})
        pipe.publish(constants.WAKE_CHANNEL, "1")
        await pipe.execute()
    return mid

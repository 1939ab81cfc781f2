"""Twilio-dialect webhooks: the Webhook (YW…) subscriptions of a Verify Service, the verification
events they receive, and the fan-out of one event message to every subscribed endpoint.

A Twilio verification that ends commits one webhook message (`vo:wh:{id}`, dialect `twilio`)
whose body is the event's form parameters. Its first delivery job does not POST anything: it
copies the message once per subscribed, enabled webhook (`vo:wh:{id}-{YW…}`) and enqueues each
copy's first attempt, all in one Redis transaction, so every endpoint then succeeds, retries and
fails on its own schedule.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.dialects.twilio import wire as tw
from orchestrator.domain.effects import Emit
from orchestrator.domain.models import Verification
from orchestrator.engine import jobs
from orchestrator.engine.store import WEBHOOK_TTL_MS, message_id

__all__ = [
    "EVENT_TYPES",
    "VERIFICATION_EVENTS",
    "Webhook",
    "child_message_id",
    "delete_webhook",
    "disable_webhook",
    "fan_out",
    "get_webhook",
    "list_webhooks",
    "render_event",
    "save_webhook",
    "service_webhooks",
    "subscribed",
    "webhook_resource",
]

# Verify Push events (Twilio's documented set) and the verification events this service adds
VERIFICATION_EVENTS = (
    "verification.approved",
    "verification.canceled",
    "verification.expired",
    "verification.max_attempts_reached",
    "verification.failed",
    "verification.pending",
)
EVENT_TYPES = frozenset(
    {
        "*",
        "factor.created",
        "factor.verified",
        "factor.deleted",
        "challenge.approved",
        "challenge.denied",
        "challenge.expired",
        *VERIFICATION_EVENTS,
    }
)


class Webhook(BaseModel):
    sid: str
    service_sid: str
    account_sid: str
    friendly_name: str
    event_types: list[str]
    status: Literal["enabled", "disabled"] = "enabled"
    version: Literal["v1", "v2"] = "v2"
    webhook_url: str
    date_created: str
    date_updated: str


def webhook_resource(wh: Webhook, base: str) -> dict[str, Any]:
    return {
        "sid": wh.sid,
        "service_sid": wh.service_sid,
        "account_sid": wh.account_sid,
        "friendly_name": wh.friendly_name,
        "event_types": list(wh.event_types),
        "status": wh.status,
        "version": wh.version,
        "webhook_url": wh.webhook_url,
        "webhook_method": "POST",
        "date_created": tw.tw_date(wh.date_created),
        "date_updated": tw.tw_date(wh.date_updated),
        "url": f"{base}/v2/Services/{wh.service_sid}/Webhooks/{wh.sid}",
    }


def subscribed(wh: Webhook, event_type: str) -> bool:
    return wh.status == "enabled" and ("*" in wh.event_types or event_type in wh.event_types)


# ---- storage ------------------------------------------------------------------------------------


def _key(sid: str) -> str:
    return constants.TWILIO_WEBHOOK_PREFIX + sid


def _index(service_sid: str) -> str:
    return constants.SERVICE_WEBHOOKS_PREFIX + service_sid


async def save_webhook(redis: Redis, wh: Webhook, created_ms: int | None = None) -> None:
    await redis.set(_key(wh.sid), wh.model_dump_json())
    if created_ms is not None:
        await redis.zadd(_index(wh.service_sid), {wh.sid: created_ms})


async def get_webhook(redis: Redis, service_sid: str, sid: str) -> Webhook | None:
    if not sid.startswith("YW") or len(sid) != 34:
        return None
    raw = await redis.get(_key(sid))
    if raw is None:
        return None
    wh = Webhook.model_validate_json(raw)
    return wh if wh.service_sid == service_sid else None


async def list_webhooks(
    redis: Redis, service_sid: str, offset: int, count: int
) -> tuple[list[Webhook], int]:
    total = int(await redis.zcard(_index(service_sid)))
    sids = await redis.zrange(_index(service_sid), offset, offset + count - 1)
    found = [await get_webhook(redis, service_sid, s.decode()) for s in sids]
    return [wh for wh in found if wh is not None], total


async def service_webhooks(redis: Redis, service_sid: str) -> list[Webhook]:
    sids = await redis.zrange(_index(service_sid), 0, -1)
    found = [await get_webhook(redis, service_sid, s.decode()) for s in sids]
    return [wh for wh in found if wh is not None]


async def delete_webhook(redis: Redis, wh: Webhook) -> None:
    await redis.delete(_key(wh.sid))
    await redis.zrem(_index(wh.service_sid), wh.sid)


async def disable_webhook(redis: Redis, service_sid: str, sid: str, date_updated: str) -> None:
    """The endpoint answered 410 Gone: stop sending to it until its owner enables it again."""
    wh = await get_webhook(redis, service_sid, sid)
    if wh is None or wh.status == "disabled":
        return
    wh.status = "disabled"
    wh.date_updated = date_updated
    await save_webhook(redis, wh)


# ---- events -------------------------------------------------------------------------------------


def render_event(v: Verification, emit: Emit) -> dict[str, Any] | None:
    """The form parameters of the verification event for a summary Emit; None for anything else
    (per-step events have no Twilio counterpart, so they become no message at all)."""
    if emit.kind != "summary":
        return None
    status = tw.twilio_status(v)
    if status == "pending":
        return None
    event_type = f"verification.{status}"
    resource = tw.verification_resource(v, "", None)
    params = {
        "uuid": message_id(v.request_id, emit.seq),
        "type": event_type,
        "account_sid": v.account,
        "service_sid": v.tenant,
        "verification_sid": v.request_id,
        "to": resource["to"],
        "channel": resource["channel"],
        "status": status,
        "date_created": resource["date_created"],
        "date_updated": tw.tw_date(emit.at),
        # an extra parameter: why the last failed step failed (e.g. sim_swap)
        "failure_reason": _failure_reason(v) if status == "failed" else None,
    }
    return {k: str(value) for k, value in params.items() if value is not None}


def _failure_reason(v: Verification) -> str | None:
    return next((s.reason for s in reversed(v.steps) if s.reason), None)


def child_message_id(parent_id: str, webhook_sid: str) -> str:
    """One message per endpoint, derived, so a repeated fan-out never mints a second one."""
    return f"{parent_id}-{webhook_sid}"


async def fan_out(redis: Redis, parent_id: str, now_ms: int) -> list[str]:
    """Copy the event message `parent_id` to every enabled webhook of its service subscribed to
    its type and enqueue each copy's first attempt; returns the new message ids.

    Runs once per message: the copies, their jobs and the parent's `fanout_ms` mark are written
    in one transaction that fails if the parent changed meanwhile (a concurrent fan-out)."""
    parent_key = constants.WEBHOOK_PREFIX + parent_id
    raw = await redis.hgetall(parent_key)  # type: ignore[misc]
    if not raw:
        return []
    record: dict[str, bytes] = {k.decode(): v for k, v in raw.items()}
    if record.get("fanout_ms"):
        return []
    tenant = record["tenant"].decode()
    params = json.loads(record["body"])
    event_type = str(params.get("type", ""))
    targets: list[Webhook] = []
    if await redis.exists(constants.SERVICE_PREFIX + tenant):
        targets = [wh for wh in await service_webhooks(redis, tenant) if subscribed(wh, event_type)]
    children = [child_message_id(parent_id, wh.sid) for wh in targets]
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.watch(parent_key)
        if await pipe.hget(parent_key, "fanout_ms"):  # type: ignore[misc]
            return []
        pipe.multi()  # type: ignore[no-untyped-call]
        for wh, child in zip(targets, children, strict=True):
            fields: dict[str, str | bytes] = {
                "tenant": tenant,
                "request_id": record.get("request_id", b"").decode(),
                "body": record["body"],
                "kind": record.get("kind", b"summary").decode(),
                "created_ms": record.get("created_ms", str(now_ms).encode()).decode(),
                "dialect": "twilio",
                "parent": parent_id,
                "webhook_sid": wh.sid,
            }
            child_key = constants.WEBHOOK_PREFIX + child
            pipe.hset(child_key, mapping=fields)
            pipe.pexpire(child_key, WEBHOOK_TTL_MS)
            job_id = jobs.webhook_job_id(child, 1)
            job = jobs.serialize_job(jobs.DELIVER_WEBHOOK, [child, 1], now_ms)
            pipe.set(jobs.job_key(job_id), job, px=jobs.EXPIRES_EXTRA_MS, nx=True)
            pipe.zadd(jobs.QUEUE, {job_id: now_ms})
        pipe.hset(parent_key, mapping={"fanout_ms": str(now_ms), "children": str(len(children))})
        if children:
            pipe.publish(constants.WAKE_CHANNEL, "1")
        await pipe.execute()
    return children

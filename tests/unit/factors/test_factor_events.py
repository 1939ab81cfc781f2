"""A factor or challenge state change and the webhook event it causes are one Redis write."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.dialects.twilio import webhook_events as twilio_webhooks
from orchestrator.engine import jobs
from orchestrator.factors import events
from orchestrator.factors.models import Challenge, Factor
from orchestrator.factors.store import FactorStore, StaleWrite

SERVICE = "VA" + "0" * 32
ACCOUNT = "AC" + "0" * 32
NOW = "2026-01-01T00:00:00.000Z"


def _factor() -> Factor:
    return Factor(
        sid="YF" + "1" * 32,
        account_sid=ACCOUNT,
        service_sid=SERVICE,
        entity_sid="YE" + "1" * 32,
        identity="user-0001",
        friendly_name="phone",
        factor_type="push",
        date_created=NOW,
        date_updated=NOW,
    )


def _challenge(factor: Factor) -> Challenge:
    return Challenge(
        sid="YC" + "1" * 32,
        account_sid=ACCOUNT,
        service_sid=SERVICE,
        entity_sid=factor.entity_sid,
        identity=factor.identity,
        factor_sid=factor.sid,
        factor_type="push",
        expiration_date=NOW,
        date_created=NOW,
        date_updated=NOW,
    )


async def _subscribe(redis: Redis, event_types: list[str]) -> None:
    hook = twilio_webhooks.Webhook(
        sid="YW" + "1" * 32,
        service_sid=SERVICE,
        account_sid=ACCOUNT,
        friendly_name="hook",
        event_types=event_types,
        webhook_url="https://example.com/hook",
        date_created=NOW,
        date_updated=NOW,
    )
    await twilio_webhooks.save_webhook(redis, hook, created_ms=1)


async def _queued_events(redis: Redis) -> list[str]:
    ids = [i.decode() for i in await redis.zrange(jobs.QUEUE, 0, -1)]
    return sorted(i for i in ids if i.startswith("webhook:evt_"))


async def test_an_approval_writes_its_event_in_the_same_call(redis: Redis) -> None:
    await _subscribe(redis, ["challenge.approved"])
    store = FactorStore(redis)
    factor = _factor()
    challenge = _challenge(factor)
    await store.add_challenge(challenge, 1)

    challenge.status = "approved"
    event = await events.prepare(redis, "challenge.approved", factor, challenge)
    assert event is not None
    await store.update_challenge(challenge, event)

    stored = await store.get_challenge(challenge.sid)
    assert stored is not None and stored.status == "approved"
    message = await redis.hgetall(constants.WEBHOOK_PREFIX + event.message_id)  # type: ignore[misc]
    assert message[b"kind"] == b"challenge.approved"
    assert b"challenge_status" in message[b"body"] and b"approved" in message[b"body"]
    assert await _queued_events(redis) == [jobs.webhook_job_id(event.message_id, 1)]


async def test_a_stale_update_writes_neither_the_record_nor_its_event(redis: Redis) -> None:
    await _subscribe(redis, ["*"])
    store = FactorStore(redis)
    factor = _factor()
    challenge = _challenge(factor)
    await store.add_challenge(challenge, 1)
    # someone else answered first (the stored version moved on)
    other = await store.get_challenge(challenge.sid)
    assert other is not None
    other.status = "denied"
    await store.update_challenge(other)

    challenge.status = "approved"
    event = await events.prepare(redis, "challenge.approved", factor, challenge)
    assert event is not None
    with pytest.raises(StaleWrite):
        await store.update_challenge(challenge, event)
    stored = await store.get_challenge(challenge.sid)
    assert stored is not None and stored.status == "denied"
    assert not await redis.exists(constants.WEBHOOK_PREFIX + event.message_id)
    assert await _queued_events(redis) == []


async def test_no_subscriber_no_event_and_an_event_is_written_once(redis: Redis) -> None:
    await _subscribe(redis, ["factor.deleted"])
    factor = _factor()
    assert await events.prepare(redis, "factor.verified", factor) is None
    first = await events.emit(redis, "factor.deleted", factor)
    assert first is not None
    assert await events.emit(redis, "factor.deleted", factor) is None
    assert await _queued_events(redis) == [jobs.webhook_job_id(first, 1)]

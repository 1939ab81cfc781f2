"""The sandbox push provider: every challenge notification lands in the tenant's outbox."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from orchestrator.engine import outbox
from orchestrator.timefmt import iso_ms, utcnow
from workers.providers.push_base import PushMessage, PushProvider

__all__ = ["PUSH_CHANNEL", "SandboxPushProvider", "outbox_record"]

PUSH_CHANNEL = "push"


def outbox_record(message: PushMessage, created_at: str) -> dict[str, Any]:
    """What `GET /sandbox/v1/messages?to=<factor sid>` shows for one notification."""
    return {
        "id": message.id,
        "channel": PUSH_CHANNEL,
        "to": message.factor_sid,
        "from": message.service_sid,
        "subject": message.title,
        "text": message.body,
        "extra": dict(message.data),
        "notification_platform": message.notification_platform,
        "challenge_sid": message.challenge_sid,
        "ttl": message.ttl,
        "priority": message.priority,
        "created_at": created_at,
    }


class SandboxPushProvider(PushProvider):
    name = "sandbox"

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def send(self, message: PushMessage) -> None:
        if message.notification_platform == "none":
            return  # the device asked for no push; the sandbox shows what a real one would get
        # the outbox remembers message ids, so a retried send is recorded once
        await outbox.append(
            self._redis, message.account_sid, outbox_record(message, iso_ms(utcnow()))
        )

"""The sandbox provider: delivers every message to the tenant's outbox in Redis."""

from __future__ import annotations

from dataclasses import asdict

from redis.asyncio import Redis

from orchestrator.engine import outbox
from orchestrator.timefmt import iso_ms, utcnow
from workers.channels.base import OutboundMessage
from workers.providers.base import Provider

__all__ = ["SandboxProvider"]


class SandboxProvider(Provider):
    name = "sandbox"
    dedupes_by_message_id = True  # outbox.append adds a message id once

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def send(self, message: OutboundMessage) -> None:
        record = asdict(message)
        record["from"] = record.pop("sender")
        record["created_at"] = iso_ms(utcnow())
        record.pop("tenant")
        if not record["extra"]:
            record.pop("extra")
        if record["subject"] is None:
            record.pop("subject")
        if str(record["id"]).startswith(f"{message.request_id}:"):
            # the id ("<request id>:<step>") says it: the outbox puts it back when read
            record.pop("request_id")
        await outbox.append(self._redis, message.tenant, record)

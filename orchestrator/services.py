"""The long-lived resources one process shares, built once from Settings."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import partial
from typing import Any

from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.dialects.twilio import webhook_events as twilio_webhooks
from orchestrator.dialects.vonage import wire as vonage
from orchestrator.domain.effects import Emit
from orchestrator.domain.models import Verification
from orchestrator.engine.codes import SecretCodeTools
from orchestrator.engine.store import Store
from orchestrator.operators.sandbox import OperatorTable, SandboxOperator
from orchestrator.settings import Settings

__all__ = ["Services", "build_services", "load_secret_key"]


@dataclass
class Services:
    settings: Settings
    redis: Redis
    store: Store
    tools: SecretCodeTools
    operator: SandboxOperator


async def load_secret_key(redis: Redis, settings: Settings) -> bytes:
    """The configured key, or one generated once per deployment and shared through Redis."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    await redis.set(constants.SERVER_KEY, secrets.token_urlsafe(32), nx=True)
    value = await redis.get(constants.SERVER_KEY)
    assert value is not None
    return bytes(value)


async def build_services(settings: Settings, redis: Redis | None = None) -> Services:
    redis = redis or Redis.from_url(settings.redis_url)
    renderer = partial(_render_webhook, public_url=settings.public_url)
    store = Store(redis, renderer, settings.retention_seconds)
    tools = SecretCodeTools(await load_secret_key(redis, settings))
    table = OperatorTable.load(settings.resolve_path(settings.sandbox_operator_table))
    operator = SandboxOperator(redis, table, settings.public_url)
    return Services(settings, redis, store, tools, operator)


def _render_webhook(v: Verification, emit: Emit, *, public_url: str) -> dict[str, Any] | None:
    """The webhook message body for `emit`, in the dialect the verification was started in."""
    if v.dialect == "twilio":
        return twilio_webhooks.render_event(v, emit)
    return vonage.webhook_body(v, emit, public_url)

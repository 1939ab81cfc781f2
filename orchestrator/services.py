"""The long-lived resources one process shares, built once from Settings."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.dialects.twilio import webhook_events as twilio_webhooks
from orchestrator.dialects.vonage import wire as vonage
from orchestrator.domain.effects import Emit
from orchestrator.domain.models import Verification
from orchestrator.engine.codes import SecretCodeTools
from orchestrator.engine.store import Store
from orchestrator.operators.operators_file import Operators, build_operators, operators_config_for
from orchestrator.operators.sandbox import OperatorTable, SandboxOperator
from orchestrator.redisconn import redis_client, replication_for
from orchestrator.settings import Settings

__all__ = ["Services", "build_services", "load_secret_key"]

log = logging.getLogger("orchestrator.services")


@dataclass
class Services:
    settings: Settings
    redis: Redis
    store: Store
    tools: SecretCodeTools
    # the built-in sandbox operator (its device table also serves /sandbox/operator/*)
    operator: SandboxOperator
    # who verifies a number silently, and who answers SIM Swap for it (VERIFY_OPERATORS_FILE)
    operators: Operators = field(default_factory=lambda: Operators([]))
    # the operators' client session (CAMARA calls); closed by `close`
    http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Release what build_services opened besides Redis (whose owner closes it)."""
        if self.http is not None:
            await self.http.close()


async def load_secret_key(redis: Redis, settings: Settings) -> bytes:
    """The configured key, or one generated once per deployment and shared through Redis."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    await redis.set(constants.SERVER_KEY, secrets.token_urlsafe(32), nx=True)
    value = await redis.get(constants.SERVER_KEY)
    assert value is not None
    return bytes(value)


async def build_services(settings: Settings, redis: Redis | None = None) -> Services:
    redis = redis or redis_client(settings)
    renderer = partial(_render_webhook, public_url=settings.public_url)
    store = Store(
        redis, renderer, settings.retention_seconds, replication=replication_for(settings)
    )
    tools = SecretCodeTools(await load_secret_key(redis, settings))
    table = OperatorTable.load(settings.resolve_path(settings.sandbox_operator_table))
    operator = SandboxOperator(redis, table, settings.public_url)
    config = operators_config_for(settings)
    http = aiohttp.ClientSession()
    operators = build_operators(
        config,
        http=http,
        secret=await load_secret_key(redis, settings),
        sandbox_operator=operator if settings.sandbox else None,
    )
    for name, why in (await operators.start()).items():
        # it retries on first use; the log line makes a misconfiguration visible at start
        log.warning("operator %s not ready: %s", name, why)
    return Services(settings, redis, store, tools, operator, operators, http)


def _render_webhook(v: Verification, emit: Emit, *, public_url: str) -> dict[str, Any] | None:
    """The webhook message body for `emit`, in the dialect the verification was started in."""
    if v.dialect == "twilio":
        return twilio_webhooks.render_event(v, emit)
    return vonage.webhook_body(v, emit, public_url)

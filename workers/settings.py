"""WorkerSettings for arq: functions, JSON serialization, startup and shutdown of resources."""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import aiohttp
from arq.connections import RedisSettings
from arq.worker import func

from orchestrator.services import build_services
from orchestrator.settings import Settings

from .channels.registry import build_adapters
from .providers.registry import build_providers
from .tasks import WorkerState, deliver_webhook, send_step, step_timeout
from .webhooks import GuardedResolver
from .worker import WakeableWorker

__all__ = ["create_worker"]

log = logging.getLogger("workers")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _loads(raw: bytes) -> Any:
    return json.loads(raw)


async def _startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    services = await build_services(settings)
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(settings.webhook_allow_private), limit=200
    )
    http = aiohttp.ClientSession(connector=connector)
    ctx["state"] = WorkerState(
        services=services,
        adapters=build_adapters(settings),
        providers=build_providers(settings, services.redis),
        http=http,
        rng=random.Random(),  # noqa: S311 - retry jitter, not a secret
    )


async def _shutdown(ctx: dict[str, Any]) -> None:
    state: WorkerState | None = ctx.get("state")
    if state is None:
        return
    await state.http.close()
    for provider in state.providers.values():
        await provider.close()
    await state.services.redis.aclose()


def create_worker(
    settings: Settings, *, burst: bool = False, handle_signals: bool = True
) -> WakeableWorker:
    functions = [
        func(send_step, name="send_step", max_tries=5, timeout=30),
        func(step_timeout, name="step_timeout", max_tries=5, timeout=30),
        func(
            deliver_webhook,
            name="deliver_webhook",
            max_tries=3,
            timeout=settings.webhook_timeout_seconds + 15,
        ),
    ]
    return WakeableWorker(
        functions=functions,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings},
        burst=burst,
        poll_delay=settings.worker_poll_delay,
        max_jobs=settings.worker_max_jobs,
        keep_result=0,
        job_serializer=_dumps,
        job_deserializer=_loads,
        log_results=False,
        handle_signals=handle_signals,
        job_completion_wait=10,
    )

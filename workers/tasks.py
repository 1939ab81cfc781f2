"""The arq job functions: thin, typed, ids in; each loads state, acts once and commits."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from arq.connections import ArqRedis

from orchestrator import constants, jobs
from orchestrator.domain import errors, transition
from orchestrator.domain.events import DeliveryFailed, StepTimedOut
from orchestrator.domain.models import Status, StepStatus
from orchestrator.services import Services
from orchestrator.timefmt import utcnow

from .channels.base import ChannelAdapter
from .providers.base import Provider, ProviderError
from .webhooks import attempt_delivery, retry_delay

__all__ = ["WorkerState", "deliver_webhook", "send_step", "step_timeout"]

log = logging.getLogger("workers.tasks")

# a provider that hangs must not hold the step past this; the step then fails over
SEND_TIMEOUT = 10.0


@dataclass
class WorkerState:
    services: Services
    adapters: dict[str, ChannelAdapter]
    providers: dict[str, Provider]
    http: aiohttp.ClientSession
    rng: random.Random


def _state(ctx: dict[str, Any]) -> WorkerState:
    state = ctx["state"]
    assert isinstance(state, WorkerState)
    return state


async def send_step(ctx: dict[str, Any], request_id: str, step: int, sealed_code: str) -> None:
    """Send the code of one step, unless the verification moved on meanwhile."""
    w = _state(ctx)
    services = w.services
    loaded = await services.store.load(request_id)
    if loaded is None:
        return
    v, _ = loaded
    if (
        v.status is not Status.PENDING
        or v.current != step
        or v.steps[step].status is not StepStatus.PENDING
    ):
        return  # cancelled, verified or moved on: no further sends
    channel = v.steps[step].channel.value
    try:
        code = services.tools.unseal(sealed_code)
        message = w.adapters[channel].compose(v, step, code)
        provider = w.providers[channel]
        async with asyncio.timeout(SEND_TIMEOUT):
            await provider.send(message)
    except (ProviderError, TimeoutError, KeyError) as exc:
        reason = f"{type(exc).__name__}: {exc}"[:200]
        log.warning("send failed for %s step %s: %s", request_id, step, reason)
        now = utcnow()
        await services.store.apply(
            request_id,
            None,
            lambda cur: transition.transition(
                cur, DeliveryFailed(step, reason), now, services.tools
            ),
            now,
        )


async def step_timeout(ctx: dict[str, Any], request_id: str, step: int) -> None:
    """The step's channel_timeout passed: expire it and move on (stale timeouts change nothing)."""
    services = _state(ctx).services
    now = utcnow()
    try:
        await services.store.apply(
            request_id,
            None,
            lambda cur: transition.transition(cur, StepTimedOut(step), now, services.tools),
            now,
        )
    except errors.NotFound:
        return


async def deliver_webhook(ctx: dict[str, Any], message_id: str, attempt: int) -> None:
    """One delivery attempt; a failure enqueues the next attempt as its own deferred job."""
    w = _state(ctx)
    settings = w.services.settings
    redis = w.services.redis
    result = await attempt_delivery(
        redis,
        w.http,
        message_id,
        allow_private=settings.webhook_allow_private,
        request_timeout=settings.webhook_timeout_seconds,
    )
    if result.outcome != "retry":
        return
    delay = retry_delay(
        settings.webhook_retry_schedule, attempt, settings.webhook_retry_jitter, w.rng
    )
    if delay is None:
        await redis.zadd(constants.WEBHOOK_FAILED_SET, {message_id: time.time()})
        log.warning("webhook %s exhausted after %d attempts", message_id, attempt)
        return
    pool = ctx["redis"]
    assert isinstance(pool, ArqRedis)
    await pool.enqueue_job(
        jobs.DELIVER_WEBHOOK,
        message_id,
        attempt + 1,
        _job_id=jobs.webhook_job_id(message_id, attempt + 1),
        _defer_by=timedelta(seconds=delay),
    )

"""The arq job functions: thin, typed, ids in; each loads state, acts once and commits."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
from arq.connections import ArqRedis
from arq.worker import Retry

from orchestrator import constants, metrics
from orchestrator.console import attempts
from orchestrator.delivery.providers_file import Delivery
from orchestrator.domain import errors, transition
from orchestrator.domain.events import DeliveryFailed, StepTimedOut
from orchestrator.domain.models import Status, StepStatus, Verification
from orchestrator.engine import jobs
from orchestrator.factors import lifecycle
from orchestrator.factors.store import FactorStore
from orchestrator.operators.base import Operator
from orchestrator.services import Services
from orchestrator.tenants import verify_services
from orchestrator.timefmt import utcnow
from workers.channels.base import ChannelAdapter, OutboundMessage
from workers.dispatch import Breakers, RouteExhausted, Sent, dispatch
from workers.providers.base import Provider, ProviderError
from workers.providers.push_base import (
    NotificationPlatform,
    PushDeliveryError,
    PushMessage,
    PushProvider,
)
from workers.providers.push_registry import build_push_provider
from workers.simswap import GATED_CHANNELS, sim_swap_refusal
from workers.webhooks import attempt_delivery, retry_delay

__all__ = [
    "WorkerState",
    "challenge_expire",
    "deliver_webhook",
    "push_send",
    "send_step",
    "step_timeout",
]

log = logging.getLogger("workers.tasks")

# a provider that hangs is given up after its timeout_seconds, at most
# settings.send_timeout_seconds (default 10 s, VERIFY_SEND_TIMEOUT_SECONDS); the message then
# goes to the route's next provider, and when none is left the step fails over to its next channel


@dataclass
class WorkerState:
    services: Services
    adapters: dict[str, ChannelAdapter]
    providers: dict[str, Provider]  # by configured name
    http: aiohttp.ClientSession
    rng: random.Random
    delivery: Delivery
    breakers: Breakers
    # the operator covering a number (its SIM Swap API), None when none does
    operator_for: Callable[[str], Operator | None] = field(default=lambda _: None)

    async def dispatch(self, message: OutboundMessage, step: int) -> Sent:
        """`message` through its route's providers, with this worker's settings and breakers."""
        services, settings = self.services, self.services.settings
        return await dispatch(
            message=message,
            step=step,
            delivery=self.delivery,
            providers=self.providers,
            breakers=self.breakers,
            redis=services.redis,
            store=services.store,
            tools=services.tools,
            send_timeout=settings.send_timeout_seconds,
            claim_ttl=settings.retention_seconds,
            receipt_ttl=settings.receipt_window_seconds,
        )


def _state(ctx: dict[str, Any]) -> WorkerState:
    state = ctx["state"]
    assert isinstance(state, WorkerState)
    return state


async def send_step(ctx: dict[str, Any], request_id: str, step: int, sealed_code: str) -> None:
    """Send the code of one step, unless the verification moved on meanwhile."""
    w = _state(ctx)
    services = w.services
    # the claim read the state with the job (WakeableWorker.prefetch), else read it now
    prefetched = ctx.get("prefetched")
    if prefetched is not None:
        loaded: tuple[Verification, int] | None = services.store.parse(request_id, prefetched)
    else:
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
    settings = services.settings
    hours = v.rules.sim_swap_max_age_hours
    if hours and channel in GATED_CHANNELS:
        refusal = await sim_swap_refusal(
            services.redis,
            w.operator_for,
            v.steps[step].to,
            hours,
            fail_open=settings.sim_swap_fail_open,
        )
        if refusal is not None:
            log.info("no %s code for %s step %s: %s", channel, request_id, step, refusal)
            await _fail_step(services, request_id, step, refusal)
            return
    try:
        code = services.tools.unseal(sealed_code)
        message = w.adapters[channel].compose(v, step, code)
        await w.dispatch(message, step)
    except (RouteExhausted, KeyError) as exc:
        reason = str(exc)[:200] if isinstance(exc, RouteExhausted) else f"no channel {exc}"
        log.warning("send failed for %s step %s: %s", request_id, step, reason)
        await _fail_step(services, request_id, step, reason)


async def _fail_step(services: Services, request_id: str, step: int, reason: str) -> None:
    now = utcnow()
    await services.store.apply(
        request_id,
        None,
        lambda cur: transition.transition(cur, DeliveryFailed(step, reason), now, services.tools),
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


async def deliver_webhook(
    ctx: dict[str, Any], message_id: str, attempt: int, replay: int = 0
) -> None:
    """One delivery attempt; a failure enqueues the next attempt as its own deferred job.
    `replay` > 0: the n-th operator replay (`webhooks replay`), whose jobs have their own ids.

    A message waiting for its next attempt is in `WEBHOOK_RETRY_SET` (the web `/metrics` gauge
    `verify_webhooks_awaiting_retry` counts it): added after the retry job is enqueued, removed
    by the next attempt that does not defer again (a first attempt was never added, so it costs
    no round trip). A worker killed between the two writes leaves it out (an undercount until
    that retry runs), never in for good: members due longer ago than the retention are dropped."""
    w = _state(ctx)
    settings = w.services.settings
    redis = w.services.redis
    result = await attempt_delivery(
        redis,
        w.http,
        message_id,
        allow_private=settings.webhook_allow_private,
        request_timeout=settings.webhook_timeout_seconds,
        retention_ms=settings.retention_seconds * 1000,
        attempt=attempt,
        replay=replay,
    )
    metrics.WEBHOOK_ATTEMPTS.labels(result.outcome).inc()
    if not result.recorded:
        # each attempt's outcome and response status, kept on the message for the console (a
        # delivery wrote its own with the delivered mark)
        await attempts.record(redis, message_id, attempt, replay, result.outcome, result.status)
    if result.outcome != "retry":
        if attempt > 1:
            await redis.zrem(constants.WEBHOOK_RETRY_SET, message_id)
        return
    delay = retry_delay(
        settings.webhook_retry_schedule, attempt, settings.webhook_retry_jitter, w.rng
    )
    if delay is None:
        async with redis.pipeline(transaction=True) as pipe:
            # `webhooks failed` lists these; attempts add up over replays
            pipe.hincrby(constants.WEBHOOK_PREFIX + message_id, "attempts", attempt)
            pipe.hset(
                constants.WEBHOOK_PREFIX + message_id, "last_status", str(result.status or "")
            )
            pipe.zadd(constants.WEBHOOK_FAILED_SET, {message_id: time.time()})
            pipe.zrem(constants.WEBHOOK_RETRY_SET, message_id)
            await pipe.execute()
        metrics.WEBHOOK_EXHAUSTED.inc()
        log.warning("webhook %s exhausted after %d attempts", message_id, attempt)
        return
    pool = ctx["redis"]
    assert isinstance(pool, ArqRedis)
    await pool.enqueue_job(
        jobs.DELIVER_WEBHOOK,
        message_id,
        attempt + 1,
        *([replay] if replay else []),
        _job_id=jobs.webhook_job_id(message_id, attempt + 1, replay),
        _defer_by=timedelta(seconds=delay),
    )
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(constants.WEBHOOK_RETRY_SET, {message_id: now_ms + int(delay * 1000)})
        pipe.zremrangebyscore(
            constants.WEBHOOK_RETRY_SET, "-inf", now_ms - settings.retention_seconds * 1000
        )
        await pipe.execute()


async def challenge_expire(ctx: dict[str, Any], challenge_sid: str) -> None:
    """A challenge's expiration_date came: expire it if still pending (with challenge.expired)."""
    await lifecycle.run_expiry(FactorStore(_state(ctx).services.redis), challenge_sid)


_PLATFORMS: dict[str, NotificationPlatform] = {"fcm": "fcm", "apn": "apn", "none": "none"}


def _push_provider(ctx: dict[str, Any], w: WorkerState) -> PushProvider | None:
    """The provider named by settings.push_provider, built once per worker (None: no push)."""
    if "push_provider" not in ctx:
        try:
            ctx["push_provider"] = build_push_provider(w.services.settings, w.services.redis)
        except (ValueError, OSError) as exc:
            log.error("push provider unavailable: %s", exc)
            ctx["push_provider"] = None
    provider = ctx["push_provider"]
    return provider if isinstance(provider, PushProvider) else None


async def push_send(ctx: dict[str, Any], challenge_sid: str, message_id: str, ttl: int) -> None:
    """Notify the device of a pending push challenge (`message_id`: the challenge's own first
    push, or a Notification NT…); throttling and outages retry, permanent refusals do not."""
    w = _state(ctx)
    redis = w.services.redis
    store = FactorStore(redis)
    challenge = await store.get_challenge(challenge_sid)
    if challenge is None or challenge.status != "pending":
        return
    factor = await store.get_factor(challenge.factor_sid)
    if factor is None or factor.factor_type != "push":
        return
    provider = _push_provider(ctx, w)
    if provider is None:
        log.warning("push %s not sent: no push provider is configured", message_id)
        return
    service = await verify_services.get_service(redis, factor.account_sid, factor.service_sid)
    message = PushMessage.for_challenge(
        id=message_id,
        account_sid=factor.account_sid,
        service_sid=factor.service_sid,
        factor_sid=factor.sid,
        challenge_sid=challenge.sid,
        identity=factor.identity,
        notification_platform=_PLATFORMS.get(
            str(factor.config.get("notification_platform")), "none"
        ),
        notification_token=factor.config.get("notification_token"),
        title=service.friendly_name if service is not None else "Verify",
        message=str(challenge.details.get("message") or ""),
        ttl=ttl,
    )
    try:
        async with asyncio.timeout(w.services.settings.send_timeout_seconds):
            await provider.send(message)
    except PushDeliveryError as exc:
        if exc.permanent:
            log.warning("push %s refused for good: %s", message_id, exc)
            return
        raise Retry(defer=exc.retry_after or 2 * int(ctx.get("job_try", 1))) from exc
    except (ProviderError, TimeoutError) as exc:
        log.info("push %s attempt failed: %s", message_id, type(exc).__name__)
        raise Retry(defer=2 * int(ctx.get("job_try", 1))) from exc

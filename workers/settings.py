"""WorkerSettings for arq: functions, JSON serialization, startup and shutdown of resources."""

from __future__ import annotations

import functools
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from arq.typing import WorkerCoroutine
from arq.worker import Retry, func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator import constants
from orchestrator.delivery.providers_file import Delivery, delivery_for
from orchestrator.delivery.receipts import Receipt
from orchestrator.engine import jobs, receipts
from orchestrator.operators.operators_file import operators_config_for
from orchestrator.redisconn import arq_client
from orchestrator.services import build_services
from orchestrator.settings import Settings
from orchestrator.workflows import registry as workflows
from workers.channels.registry import build_adapters
from workers.dispatch import Breakers
from workers.handoff import send_handoff_link
from workers.providers.base import ProviderContext
from workers.providers.registry import build_providers
from workers.tasks import (
    WorkerState,
    challenge_expire,
    deliver_webhook,
    push_send,
    send_step,
    step_timeout,
)
from workers.webhooks import GuardedResolver
from workers.worker import WakeableWorker

__all__ = ["create_worker"]

log = logging.getLogger("workers")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _outage_retried(job: Callable[..., Awaitable[None]]) -> WorkerCoroutine:
    """A Redis outage (restart, failover) mid-job is not the job's failure, which arq would drop:
    arq runs it again after a back-off instead. Every job here is idempotent."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        try:
            await job(ctx, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("redis unavailable during %s, retrying: %s", job.__name__, exc)
            raise Retry(defer=min(2 ** int(ctx.get("job_try", 1)), 30)) from exc

    return run


async def _startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    if settings.worker_metrics_port:
        from orchestrator.metrics import serve_worker_metrics

        serve_worker_metrics(settings.worker_metrics_port, token=settings.metrics_token)
    delivery: Delivery = ctx["delivery"]
    services = await build_services(settings)
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(settings.webhook_allow_private), limit=200
    )
    http = aiohttp.ClientSession(connector=connector)
    # providers call their vendors through a session of their own: the webhook session's
    # resolver refuses private addresses, which an SMSC or an in-house gateway may well have
    vendor_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))

    async def on_receipt(provider: str, receipt: Receipt) -> None:
        await receipts.apply(services.store, services.tools, provider, receipt)

    context = ProviderContext(
        http=vendor_http,
        public_url=settings.public_url,
        seal=services.tools.seal,
        on_receipt=on_receipt,
    )
    providers = build_providers(delivery, settings, services.redis, context)
    for provider in providers.values():
        await provider.start()
    ctx["vendor_http"] = vendor_http
    ctx["state"] = WorkerState(
        services=services,
        adapters=build_adapters(settings),
        providers=providers,
        http=http,
        rng=random.Random(),  # noqa: S311 - retry jitter, not a secret
        delivery=delivery,
        breakers=Breakers(delivery.circuit),
        operator_for=lambda msisdn: services.operators.for_number(msisdn, sim_swap=True),
    )


async def _shutdown(ctx: dict[str, Any]) -> None:
    state: WorkerState | None = ctx.get("state")
    if state is None:
        return
    await state.http.close()
    for provider in state.providers.values():
        await provider.close()
    await ctx["vendor_http"].close()
    await state.services.close()
    push_provider = ctx.get("push_provider")
    if push_provider is not None:
        await push_provider.close()
    await state.services.redis.aclose()


def create_worker(
    settings: Settings, *, burst: bool = False, handle_signals: bool = True
) -> WakeableWorker:
    """The worker; raises ProvidersFileError / OperatorsFileError (one line) when the providers
    or operators file can't be used."""
    delivery = delivery_for(settings)
    operators_config_for(settings)
    workflows.load_for(settings)  # the same refusal as `serve` for a workflows file
    # a send may try every provider of its longest route, each up to send_timeout_seconds
    longest_route = max(
        (len(names) for table in delivery.routes.values() for names in table.values()), default=1
    )
    functions = [
        # arq re-runs a killed worker's job once its in-progress key expires, after the longest
        # of these timeouts + 10 s: keep each one its own bound plus a margin for Redis, no more.
        # max_tries counts runs cut short by a killed worker or a Redis outage (not failures)
        func(
            _outage_retried(send_step),
            name="send_step",
            max_tries=5,
            timeout=settings.send_timeout_seconds * longest_route + 5,
        ),
        func(_outage_retried(step_timeout), name="step_timeout", max_tries=5, timeout=10),
        # the desktop handoff's "text me a link" SMS, through the sms route like a code
        func(
            _outage_retried(send_handoff_link),
            name="send_handoff_link",
            max_tries=5,
            timeout=settings.send_timeout_seconds * longest_route + 5,
        ),
        func(
            _outage_retried(deliver_webhook),
            name="deliver_webhook",
            max_tries=5,
            timeout=settings.webhook_timeout_seconds + 5,
        ),
        # Verify factors: a challenge's expiry (may wait out a few seconds of clock skew) and
        # its push notifications (retried on throttling and outages)
        func(_outage_retried(challenge_expire), name="challenge_expire", max_tries=5, timeout=20),
        func(
            _outage_retried(push_send),
            name="push_send",
            max_tries=5,
            timeout=settings.send_timeout_seconds + 5,
        ),
    ]
    worker = WakeableWorker(
        functions=functions,
        # the Sentinel-aware pool of orchestrator/redisconn.py, not arq's create_pool
        redis_pool=arq_client(
            settings, job_serializer=_dumps, job_deserializer=jobs.deserialize_job
        ),
        on_startup=_startup,
        on_shutdown=_shutdown,
        ctx={"settings": settings, "delivery": delivery},
        burst=burst,
        poll_delay=settings.worker_poll_delay,
        max_jobs=settings.worker_max_jobs,
        keep_result=0,
        job_serializer=_dumps,
        job_deserializer=jobs.deserialize_job,
        log_results=False,
        handle_signals=handle_signals,
        job_completion_wait=10,
    )
    # a send job starts by reading its verification: the claim brings it along
    worker.prefetch = {jobs.SEND_JOB_PREFIX: constants.VERIFICATION_PREFIX}
    return worker

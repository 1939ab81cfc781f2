"""Delivery receipts back to the step they speak of: metrics, and a failed one fails the step.

A provider that takes a message names it by its own id. The worker maps that id to the step
(`remember`); a receipt, from the web process (HTTP callbacks) or the worker (SMPP
deliver_sm), finds the step through it (`apply`). An SMSC may answer with the receipt before
the worker has written the mapping, so a receipt that finds no mapping is parked, and whichever
side comes second takes it (GETDEL: exactly one of them does).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass

from redis.asyncio.client import Pipeline

from orchestrator import constants, metrics
from orchestrator.delivery.receipts import Receipt
from orchestrator.domain import errors, transition
from orchestrator.domain.events import DeliveryFailed
from orchestrator.domain.transition import CodeTools
from orchestrator.engine.luascripts import registered
from orchestrator.engine.store import Store
from orchestrator.timefmt import utcnow

__all__ = ["SentMessage", "apply", "queue_mapping", "remember", "take_parked"]

log = logging.getLogger("orchestrator.receipts")

# a receipt waits this long for its mapping (the worker writes it right after the send returns)
_PARKED_SECONDS = 300

# KEYS[1] the mapping hash; ARGV[1] the receipt's status. nil when the mapping is missing; else
# its fields and whether this status is new for the message (1) or was seen before (0)
_LOOKUP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local fields = redis.call('HMGET', KEYS[1], 'rid', 'step', 'channel', 'country', 'sent_ms')
fields[6] = redis.call('HSETNX', KEYS[1], 'seen:' .. ARGV[1], '1')
return fields
"""


@dataclass(frozen=True)
class SentMessage:
    """Which step a provider's message carried, and when the provider took it."""

    rid: str
    step: int
    channel: str
    country: str
    sent_ms: int


def _keys(provider: str, provider_id: str) -> tuple[str, str]:
    name = f"{provider}:{provider_id}"
    return constants.PROVIDER_MESSAGE_PREFIX + name, constants.PROVIDER_RECEIPT_PREFIX + name


def _parked(raw: bytes) -> Receipt:
    return Receipt(**json.loads(raw))


def queue_mapping(
    pipe: Pipeline, provider: str, provider_id: str, sent: SentMessage, ttl: int
) -> None:
    """Add to `pipe` what maps `provider_id` to the step: three commands, the last of which
    answers a receipt that came before the mapping (pass it to `take_parked`)."""
    key, parked = _keys(provider, provider_id)
    pipe.hset(key, mapping={k: str(v) for k, v in asdict(sent).items()})
    pipe.expire(key, ttl)
    pipe.getdel(parked)


async def take_parked(store: Store, tools: CodeTools, provider: str, parked: bytes | None) -> None:
    """Apply the receipt `queue_mapping`'s last command found parked (None: there was none)."""
    if parked is not None:
        await apply(store, tools, provider, _parked(parked))


async def remember(
    store: Store,
    tools: CodeTools,
    provider: str,
    provider_id: str,
    sent: SentMessage,
    ttl: int,
) -> None:
    """Map `provider_id` to the step; apply a receipt that came before the mapping did."""
    async with store.redis.pipeline(transaction=False) as pipe:
        queue_mapping(pipe, provider, provider_id, sent, ttl)
        *_, early = await pipe.execute()
    await take_parked(store, tools, provider, early)


async def apply(store: Store, tools: CodeTools, provider: str, receipt: Receipt) -> bool:
    """Act on `receipt`: count it, and fail the step at once when it says the message is lost.
    False when no step is known for it yet (it is parked for the worker to take)."""
    redis = store.redis
    key, parked = _keys(provider, receipt.provider_id)
    lookup = registered(redis, _LOOKUP)
    found = await lookup(keys=[key], args=[receipt.status])
    if found is None:
        await redis.set(parked, json.dumps(asdict(receipt)), ex=_PARKED_SECONDS)
        found = await lookup(keys=[key], args=[receipt.status])
        if found is None:
            return False  # the worker takes it when it maps the id
        if await redis.getdel(parked) is None:
            return True  # the worker took it meanwhile
    rid, step, channel, country, sent_ms, first = (
        v.decode() if isinstance(v, bytes) else v for v in found
    )
    if int(first) == 1:
        metrics.DELIVERIES.labels(channel, provider, country, receipt.status).inc()
        if receipt.status == "delivered":
            latency = max(0.0, time.time() - int(sent_ms) / 1000)
            metrics.DELIVERY_LATENCY.labels(channel, provider).observe(latency)
    if receipt.status == "failed":
        reason = f"{provider}: {receipt.raw_status or 'failed'}"
        if receipt.error:
            reason += f" ({receipt.error})"
        log.info("delivery failed for %s step %s: %s", rid, step, reason)
        now = utcnow()
        try:
            await store.apply(
                rid,
                None,
                lambda cur: transition.transition(
                    cur, DeliveryFailed(int(step), reason), now, tools
                ),
                now,
            )
        except errors.NotFound:
            pass  # the verification is gone (retention): nothing to move on
    return True

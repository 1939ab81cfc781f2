"""One message through its route: the providers in order until one takes it.

Within a step, a provider that refuses, errs, times out or has its circuit open hands the same
message to the next provider of the route; only an exhausted route fails the step (and the
workflow moves to its next channel).

Exactly once per provider per message: before a provider is asked, a claim is written in
`vo:send:<message id>` (HSETNX provider "sending"), then its outcome ("ok:<vendor id>",
"failed"). A send job that runs again (its worker was killed, Redis dropped) finds the claim:
a provider that took the message means it was sent — nothing more to do; one that failed or
whose outcome is unknown ("sending": the worker died mid-send) is not asked again — the next
provider is. A resend is a new step, so a new message id, and is not blocked by these claims.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis

from orchestrator import constants, metrics
from orchestrator.delivery.providers_file import CircuitConfig, Delivery
from orchestrator.domain.transition import CodeTools
from orchestrator.engine import receipts
from orchestrator.engine.store import Store
from orchestrator.phone import region_of
from workers.channels.base import OutboundMessage
from workers.providers.base import Accepted, Provider, ProviderError

__all__ = ["Breakers", "RouteExhausted", "Sent", "dispatch"]

log = logging.getLogger("workers.dispatch")

_FAILED = b"failed"
_OK = b"ok:"


class RouteExhausted(Exception):
    """Every provider of the route refused the message; the reasons, one per provider."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons) or "no provider is routed for this channel")
        self.reasons = reasons


@dataclass(frozen=True)
class Sent:
    """Which provider took the message (`provider_id`: its id, None when it gives none)."""

    provider: str
    provider_id: str | None
    again: bool = False  # True: an earlier run of the job had sent it already


@dataclass
class _Circuit:
    failures: int = 0
    open_until: float = 0.0


@dataclass
class Breakers:
    """Per-process circuit breakers: `failures` failed sends in a row open a provider's circuit
    for `cooldown_seconds`; then one send is let through (half-open), which closes it again on
    success or reopens it on failure."""

    config: CircuitConfig
    clock: object = time.monotonic
    _circuits: dict[str, _Circuit] = field(default_factory=dict)

    def _now(self) -> float:
        clock = self.clock
        assert callable(clock)
        return float(clock())

    def is_open(self, name: str) -> bool:
        circuit = self._circuits.get(name)
        return circuit is not None and circuit.open_until > self._now()

    def failed(self, name: str) -> None:
        circuit = self._circuits.setdefault(name, _Circuit())
        circuit.failures += 1
        if circuit.failures >= self.config.failures:
            if circuit.open_until == 0.0:
                log.warning("provider %s: circuit open after %d failures", name, circuit.failures)
            circuit.open_until = self._now() + self.config.cooldown_seconds

    def succeeded(self, name: str) -> None:
        if name in self._circuits:
            if self._circuits[name].open_until:
                log.info("provider %s: circuit closed", name)
            del self._circuits[name]


def _timeout(provider_timeout: float | None, ceiling: float) -> float:
    return min(provider_timeout, ceiling) if provider_timeout else ceiling


async def dispatch(
    *,
    message: OutboundMessage,
    step: int,
    delivery: Delivery,
    providers: dict[str, Provider],
    breakers: Breakers,
    redis: Redis,
    store: Store,
    tools: CodeTools,
    send_timeout: float,
    claim_ttl: int,
    receipt_ttl: int,
) -> Sent:
    """Send `message` through the first provider of its route that takes it; raise
    RouteExhausted (with every provider's reason) when none does."""
    names = delivery.route(message.channel, message.to)
    claims = constants.SEND_CLAIM_PREFIX + message.id
    reasons: list[str] = []
    for name in names:
        if breakers.is_open(name):
            reasons.append(f"{name}: circuit open")
            continue
        provider = providers[name]
        claimed = not provider.dedupes_by_message_id
        if claimed:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hsetnx(claims, name, "sending")
                pipe.hget(claims, name)
                pipe.expire(claims, claim_ttl)
                fresh, state, _ = await pipe.execute()
            if not fresh:
                if state is not None and bytes(state).startswith(_OK):
                    vendor_id = bytes(state)[len(_OK) :].decode() or None
                    return Sent(name, vendor_id, again=True)
                word = (
                    "failed" if state == _FAILED else "outcome unknown (a worker stopped mid-send)"
                )
                reasons.append(f"{name}: {word} on an earlier try, not asked twice")
                continue
        config = delivery.providers[name]
        timeout = _timeout(getattr(config, "timeout_seconds", None), send_timeout)
        try:
            async with asyncio.timeout(timeout):
                accepted: Accepted | None = await provider.send(message)
        except (ProviderError, TimeoutError) as exc:
            breakers.failed(name)
            if claimed:
                await redis.hset(claims, name, "failed")  # type: ignore[misc]
            metrics.SENDS.labels(message.channel, name, "failed").inc()
            why = str(exc) if isinstance(exc, ProviderError) else f"no answer in {timeout:g} s"
            reasons.append(f"{name}: {why}"[:200])
            log.warning("send %s via %s failed: %s", message.id, name, reasons[-1])
            continue
        breakers.succeeded(name)
        metrics.SENDS.labels(message.channel, name, "sent").inc()
        vendor_id = accepted.provider_id if accepted is not None else None
        if not claimed and not vendor_id:
            return Sent(name, None)
        # the outcome and the vendor id's mapping to the step, in one round trip
        async with redis.pipeline(transaction=False) as pipe:
            if claimed:
                pipe.hset(claims, name, "ok:" + (vendor_id or ""))
            if vendor_id:
                sent = receipts.SentMessage(
                    rid=message.request_id,
                    step=step,
                    channel=message.channel,
                    country=region_of(message.to) or "ZZ",
                    sent_ms=int(time.time() * 1000),
                )
                receipts.queue_mapping(pipe, name, vendor_id, sent, receipt_ttl)
            answers = await pipe.execute()
        if vendor_id:
            await receipts.take_parked(store, tools, name, answers[-1])
        return Sent(name, vendor_id)
    raise RouteExhausted(reasons)

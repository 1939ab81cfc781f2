"""Failover within a step, exactly-once sends per provider, circuit breakers, and receipts
finding their step — against a real Redis (the claims and the receipt lookup are Redis code)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from orchestrator import constants, metrics
from orchestrator.delivery.providers_file import CircuitConfig, Delivery, SandboxConfig
from orchestrator.delivery.receipts import Receipt
from orchestrator.domain import transition
from orchestrator.domain.models import Channel, Status, Step, StepStatus, Verification
from orchestrator.engine import receipts
from orchestrator.engine.store import Store
from tests.unit.domain.test_transition import FakeTools
from workers.channels.base import OutboundMessage
from workers.dispatch import Breakers, RouteExhausted, dispatch
from workers.providers.base import Accepted, Provider, ProviderError

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RID = "0b7d6a1f-3c2e-4d59-9a43-1c2b3d4e5f60"


class Scripted(Provider):
    """A provider whose answers the test sets: "ok", "error" or "hang"."""

    def __init__(self, name: str, answer: str = "ok") -> None:
        self.name = name
        self.answer = answer
        self.sent: list[str] = []

    async def send(self, message: OutboundMessage) -> Accepted | None:
        self.sent.append(message.id)
        if self.answer == "error":
            raise ProviderError(f"{self.name} 21211: Invalid 'To' Phone Number")
        if self.answer == "hang":
            await asyncio.sleep(60)
        return Accepted(f"{self.name}-id-{len(self.sent)}")


def _delivery(*names: str, failures: int = 5) -> Delivery:
    providers = {n: SandboxConfig(kind="sandbox") for n in names}
    return Delivery(
        providers,  # type: ignore[arg-type]
        {"sms": {"default": names}, "voice": {"default": names}},
        CircuitConfig(failures=failures, cooldown_seconds=30),
    )


def _message(step: int = 0) -> OutboundMessage:
    return OutboundMessage(
        id=f"{RID}:{step}",
        tenant="app-1",
        request_id=RID,
        channel="sms",
        to="447700900123",
        sender="ACME",
        text="ACME: 1234",
        code="1234",
        locale="en-gb",
    )


async def _pending(redis: Redis) -> tuple[Store, FakeTools]:
    store = Store(redis, lambda v, e: None, retention_seconds=3600)
    tools = FakeTools()
    v = Verification(
        request_id=RID,
        tenant="app-1",
        brand="ACME",
        locale="en-gb",
        channel_timeout=180,
        code_length=4,
        steps=[
            Step(channel=Channel.SMS, to="447700900123"),
            Step(channel=Channel.VOICE, to="447700900123"),
        ],
        created_at=NOW,
    )
    await store.create(transition.begin(v, NOW, tools), NOW)
    return store, tools


async def _send(
    redis: Redis,
    store: Store,
    tools: FakeTools,
    providers: dict[str, Provider],
    breakers: Breakers | None = None,
    delivery: Delivery | None = None,
    send_timeout: float = 5,
) -> object:
    delivery = delivery or _delivery(*providers)
    return await dispatch(
        message=_message(),
        step=0,
        delivery=delivery,
        providers=providers,
        breakers=breakers or Breakers(delivery.circuit),
        redis=redis,
        store=store,
        tools=tools,
        send_timeout=send_timeout,
        claim_ttl=600,
        receipt_ttl=600,
    )


async def test_an_erring_provider_hands_the_message_to_the_next(redis: Redis) -> None:
    store, tools = await _pending(redis)
    a, b = Scripted("a", "error"), Scripted("b")
    sent = await _send(redis, store, tools, {"a": a, "b": b})
    assert a.sent == [f"{RID}:0"] and b.sent == [f"{RID}:0"]
    assert sent.provider == "b" and sent.provider_id == "b-id-1"  # type: ignore[attr-defined]
    claims = await redis.hgetall(constants.SEND_CLAIM_PREFIX + f"{RID}:0")
    assert claims == {b"a": b"failed", b"b": b"ok:b-id-1"}


async def test_a_hanging_provider_is_given_up_after_the_timeout(redis: Redis) -> None:
    store, tools = await _pending(redis)
    a, b = Scripted("a", "hang"), Scripted("b")
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = await _send(redis, store, tools, {"a": a, "b": b}, send_timeout=0.3)
    assert 0.3 <= loop.time() - started < 2
    assert sent.provider == "b"  # type: ignore[attr-defined]


async def test_the_route_exhausted_names_every_provider(redis: Redis) -> None:
    store, tools = await _pending(redis)
    providers: dict[str, Provider] = {"a": Scripted("a", "error"), "b": Scripted("b", "error")}
    with pytest.raises(RouteExhausted) as caught:
        await _send(redis, store, tools, providers)
    assert [r.split(":")[0] for r in caught.value.reasons] == ["a", "b"]
    assert "21211" in str(caught.value)


async def test_a_run_again_never_sends_twice_through_the_same_provider(redis: Redis) -> None:
    store, tools = await _pending(redis)
    a, b = Scripted("a"), Scripted("b")
    first = await _send(redis, store, tools, {"a": a, "b": b})
    again = await _send(redis, store, tools, {"a": a, "b": b})
    assert a.sent == [f"{RID}:0"] and b.sent == []
    assert again.again and again.provider == "a" and again.provider_id == first.provider_id  # type: ignore[attr-defined]


async def test_a_worker_that_died_mid_send_leaves_that_provider_out(redis: Redis) -> None:
    """The claim says "sending" and nothing more: the vendor may have the message, so the run
    after the crash does not ask it again; the next provider of the route gets it."""
    store, tools = await _pending(redis)
    await redis.hset(constants.SEND_CLAIM_PREFIX + f"{RID}:0", "a", "sending")
    a, b = Scripted("a"), Scripted("b")
    sent = await _send(redis, store, tools, {"a": a, "b": b})
    assert a.sent == [] and b.sent == [f"{RID}:0"]
    assert sent.provider == "b"  # type: ignore[attr-defined]


async def test_the_circuit_opens_after_failures_and_half_opens_after_cooldown(
    redis: Redis,
) -> None:
    now = [0.0]
    breakers = Breakers(CircuitConfig(failures=2, cooldown_seconds=30), clock=lambda: now[0])
    assert not breakers.is_open("a")
    breakers.failed("a")
    assert not breakers.is_open("a")
    breakers.failed("a")
    assert breakers.is_open("a")
    now[0] = 29.9
    assert breakers.is_open("a")
    now[0] = 30.1
    assert not breakers.is_open("a")  # one send may try it
    breakers.failed("a")
    assert breakers.is_open("a")  # it failed again: open for another cooldown
    now[0] = 61
    breakers.succeeded("a")
    assert not breakers.is_open("a")
    breakers.failed("a")
    assert not breakers.is_open("a")  # a success reset the count


async def test_an_open_circuit_skips_the_provider_without_asking_it(redis: Redis) -> None:
    store, tools = await _pending(redis)
    delivery = _delivery("a", "b", failures=1)
    breakers = Breakers(delivery.circuit)
    breakers.failed("a")
    a, b = Scripted("a"), Scripted("b")
    sent = await _send(redis, store, tools, {"a": a, "b": b}, breakers, delivery)
    assert a.sent == [] and sent.provider == "b"  # type: ignore[attr-defined]


async def test_a_failed_receipt_moves_the_workflow_on_at_once(redis: Redis) -> None:
    store, tools = await _pending(redis)
    sent = await _send(redis, store, tools, {"a": Scripted("a")})
    receipt = Receipt(sent.provider_id, "failed", "013", "UNDELIV")  # type: ignore[attr-defined]
    assert await receipts.apply(store, tools, "a", receipt)
    loaded = await store.load(RID)
    assert loaded is not None
    v = loaded[0]
    assert v.status is Status.PENDING and v.current == 1
    assert v.steps[0].status is StepStatus.FAILED
    # the same receipt again (vendors retry) changes nothing more
    assert await receipts.apply(store, tools, "a", receipt)
    again = await store.load(RID)
    assert again is not None and again[0].current == 1


async def test_delivered_is_counted_once_with_its_latency(redis: Redis) -> None:
    store, tools = await _pending(redis)
    sent = await _send(redis, store, tools, {"a": Scripted("a")})
    labels = {"channel": "sms", "provider": "a", "country": "GB", "status": "delivered"}
    before = _sample("verify_deliveries_total", labels)
    latency_before = _sample(
        "verify_delivery_latency_seconds_count", {"channel": "sms", "provider": "a"}
    )
    receipt = Receipt(sent.provider_id, "delivered", None, "DELIVRD")  # type: ignore[attr-defined]
    for _ in range(2):
        assert await receipts.apply(store, tools, "a", receipt)
    assert _sample("verify_deliveries_total", labels) == before + 1
    assert (
        _sample("verify_delivery_latency_seconds_count", {"channel": "sms", "provider": "a"})
        == latency_before + 1
    )
    loaded = await store.load(RID)
    assert loaded is not None and loaded[0].current == 0  # delivered moves nothing


async def test_a_receipt_before_its_mapping_is_taken_when_the_mapping_comes(
    redis: Redis,
) -> None:
    """An SMSC can answer with the receipt before the worker maps the id: the receipt is
    parked, and mapping the id applies it — once."""
    store, tools = await _pending(redis)
    early = Receipt("smsc-77", "failed", "013", "UNDELIV")
    assert not await receipts.apply(store, tools, "smsc", early)
    loaded = await store.load(RID)
    assert loaded is not None and loaded[0].current == 0
    sent = receipts.SentMessage(RID, 0, "sms", "GB", 0)
    await receipts.remember(store, tools, "smsc", "smsc-77", sent, 600)
    loaded = await store.load(RID)
    assert loaded is not None and loaded[0].current == 1
    assert await redis.exists(constants.PROVIDER_RECEIPT_PREFIX + "smsc:smsc-77") == 0


async def test_a_receipt_for_an_unknown_id_changes_nothing(redis: Redis) -> None:
    store, tools = await _pending(redis)
    assert not await receipts.apply(store, tools, "a", Receipt("nope", "failed"))
    loaded = await store.load(RID)
    assert loaded is not None and loaded[0].current == 0


def _sample(name: str, labels: dict[str, str]) -> float:
    assert metrics.DELIVERIES is not None  # registered on import, in the default registry
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_provider_that_dedupes_by_message_id_needs_no_claims(redis: Redis) -> None:
    """The sandbox outbox adds a message id once, so sending it again is harmless: no claim is
    written for it, and a run again sends again (and the outbox keeps one)."""
    store, tools = await _pending(redis)
    sandbox = Scripted("sandbox")
    sandbox.dedupes_by_message_id = True
    await _send(redis, store, tools, {"sandbox": sandbox})
    await _send(redis, store, tools, {"sandbox": sandbox})
    assert sandbox.sent == [f"{RID}:0", f"{RID}:0"]
    assert await redis.exists(constants.SEND_CLAIM_PREFIX + f"{RID}:0") == 0

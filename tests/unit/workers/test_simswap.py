"""The SIM-swap gate's decisions: swapped refuses, clear sends, answers are cached a minute per
number, and an operator that can't answer fails open or closed as configured (counted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.operators.base import Operator, OperatorUnavailable
from workers.simswap import sim_swap_refusal


class Swaps:
    """Stands in for an operator's SIM Swap API: swap times by number, or unavailable."""

    def __init__(self, swapped: dict[str, datetime], down: bool = False) -> None:
        self.swapped, self.down, self.asked = swapped, down, 0

    async def sim_swapped(self, msisdn: str, max_age_hours: int) -> bool:
        self.asked += 1
        if self.down:
            raise OperatorUnavailable("operator_error: 503")
        at = self.swapped.get(msisdn)
        return at is not None and datetime.now(UTC) - at <= timedelta(hours=max_age_hours)


def _lookup(swaps: Swaps) -> object:
    return lambda msisdn: swaps  # the covering operator for every number


def _count(outcome: str) -> float:
    found = REGISTRY.get_sample_value("verify_sim_swap_checks_total", {"outcome": outcome})
    return found or 0.0


async def test_a_recent_swap_refuses_and_an_old_one_does_not(redis: Redis) -> None:
    now = datetime.now(UTC)
    swaps = Swaps(
        {"447700900118": now - timedelta(hours=2), "447700900119": now - timedelta(days=30)}
    )
    before = _count("swapped")
    assert (
        await sim_swap_refusal(redis, _lookup(swaps), "447700900118", 24, fail_open=True)
        == "sim_swap"
    )  # type: ignore[arg-type]
    assert _count("swapped") == before + 1
    assert await sim_swap_refusal(redis, _lookup(swaps), "447700900119", 24, fail_open=True) is None  # type: ignore[arg-type]
    # a window shorter than the swap's age lets it through
    assert await sim_swap_refusal(redis, _lookup(swaps), "447700900118", 1, fail_open=True) is None  # type: ignore[arg-type]


async def test_answers_are_cached_a_minute_per_number_and_window(redis: Redis) -> None:
    swaps = Swaps({"447700900118": datetime.now(UTC)})
    for _ in range(3):
        await sim_swap_refusal(redis, _lookup(swaps), "447700900118", 24, fail_open=True)  # type: ignore[arg-type]
    assert swaps.asked == 1
    keys = [k async for k in redis.scan_iter(match=constants.SIM_SWAP_CACHE_PREFIX + "*")]
    assert len(keys) == 1 and b"447700900118" not in keys[0]  # a digest, not the number
    assert 0 < await redis.ttl(keys[0]) <= 60


async def test_an_operator_that_cannot_answer_fails_open_or_closed(redis: Redis) -> None:
    swaps = Swaps({}, down=True)
    opened, closed = _count("unavailable_open"), _count("unavailable_closed")
    assert await sim_swap_refusal(redis, _lookup(swaps), "447700900118", 24, fail_open=True) is None  # type: ignore[arg-type]
    refusal = await sim_swap_refusal(redis, _lookup(swaps), "447700900118", 24, fail_open=False)  # type: ignore[arg-type]
    assert refusal == "sim_swap_unknown: operator_error: 503"
    assert (_count("unavailable_open"), _count("unavailable_closed")) == (opened + 1, closed + 1)
    # nothing is cached from an operator that did not answer
    assert [k async for k in redis.scan_iter(match=constants.SIM_SWAP_CACHE_PREFIX + "*")] == []


async def test_a_number_no_operator_covers_counts_as_unanswered(redis: Redis) -> None:
    def nobody(msisdn: str) -> Operator | None:
        return None

    assert await sim_swap_refusal(redis, nobody, "15551234567", 24, fail_open=True) is None
    assert (
        await sim_swap_refusal(redis, nobody, "15551234567", 24, fail_open=False)
        == "sim_swap_unknown: no_operator"
    )

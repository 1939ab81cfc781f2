"""The SIM-swap gate: no SMS, WhatsApp or voice code to a number whose SIM changed recently.

A verification started for an application or service with `sim_swap_max_age_hours` set asks,
before each such send, the operator covering the number (its CAMARA SIM Swap API) whether the
SIM changed within that many hours. A recent swap is how SIM-swap fraud looks: the code would go
to the attacker's new SIM, so the step fails with reason "sim_swap" and the workflow moves on
(silent auth and email are not asked about). Answers are cached per number for a minute; an
operator that can't answer (or no operator covering the number) lets the send go when
VERIFY_SIM_SWAP_FAIL_OPEN is true (the default) and refuses it otherwise, counted either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from redis.asyncio import Redis

from orchestrator import constants, metrics
from orchestrator.operators.base import Operator, OperatorUnavailable

__all__ = ["GATED_CHANNELS", "SWAPPED", "sim_swap_refusal"]

log = logging.getLogger("workers.simswap")

GATED_CHANNELS = frozenset({"sms", "whatsapp", "voice"})
SWAPPED = "sim_swap"
CACHE_SECONDS = 60


async def sim_swap_refusal(
    redis: Redis,
    operator_for: Callable[[str], Operator | None],
    msisdn: str,
    hours: int,
    *,
    fail_open: bool,
) -> str | None:
    """Why the code must not be sent to `msisdn` ("sim_swap", or "sim_swap_unknown: …" when
    failing closed); None to send it."""
    key = f"{constants.SIM_SWAP_CACHE_PREFIX}{constants.hashed_key_part(msisdn)}:{hours}"
    cached = await redis.get(key)
    if cached is not None:
        swapped = cached == b"1"
    else:
        operator = operator_for(msisdn)
        try:
            if operator is None:
                raise OperatorUnavailable("no_operator")
            swapped = await operator.sim_swapped(msisdn, hours)
        except OperatorUnavailable as exc:
            outcome = "unavailable_open" if fail_open else "unavailable_closed"
            metrics.SIM_SWAP_CHECKS.labels(outcome).inc()
            log.warning("SIM-swap check could not be answered (%s): %s", outcome, exc.reason)
            return None if fail_open else f"sim_swap_unknown: {exc.reason}"[:200]
        await redis.set(key, "1" if swapped else "0", ex=CACHE_SECONDS)
    metrics.SIM_SWAP_CHECKS.labels("swapped" if swapped else "clear").inc()
    return SWAPPED if swapped else None

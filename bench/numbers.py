"""Unique destinations: a second pending start to the same number answers 409, so never reuse one."""

from __future__ import annotations

import random

__all__ = ["Numbers"]

_UK_PREFIX = "4477009"  # +44 7700 9xxxxx: UK numbers reserved for drama, never a real handset
_UK_SPAN = 100_000
_SANDBOX_PREFIX = "990"  # the Vonage-compatible sandbox range, used once the UK range runs out


class Numbers:
    """Hands out each destination once per run, in a random order."""

    def __init__(self, seed: int | None = None) -> None:
        rng = random.Random(seed)
        self._uk = rng.sample(range(_UK_SPAN), _UK_SPAN)
        self._sandbox_offset = rng.randrange(10**8)
        self._issued = 0

    @property
    def issued(self) -> int:
        return self._issued

    def next(self) -> str:
        i = self._issued
        self._issued += 1
        if i < _UK_SPAN:
            return f"{_UK_PREFIX}{self._uk[i]:05d}"
        return f"{_SANDBOX_PREFIX}{(self._sandbox_offset + i) % 10**9:09d}"

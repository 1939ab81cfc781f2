"""A closed-loop load generator: `concurrency` loops, each sends its next request when the last ends."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .stats import summary_ms

__all__ = ["LoadResult", "Op", "closed_loop"]

# one request; returns an outcome label such as "202" or "400" (exceptions are counted by type)
Op = Callable[[], Awaitable[str]]


@dataclass
class LoadResult:
    ok_labels: frozenset[str]
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> int:
        return sum(n for label, n in self.outcomes.items() if label in self.ok_labels)

    @property
    def errors(self) -> dict[str, int]:
        return {k: n for k, n in self.outcomes.items() if k not in self.ok_labels}

    @property
    def rate(self) -> float | None:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 and self.ok else None

    def summary(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 3),
            "per_s": None if self.rate is None else round(self.rate, 1),
            "latency": summary_ms(self.latencies_ms),
        }


async def closed_loop(
    op: Op,
    *,
    concurrency: int,
    ok: set[str],
    duration_s: float | None = None,
    count: int | None = None,
) -> LoadResult:
    """Run `op` from `concurrency` loops until `duration_s` passed or `count` ops were issued.

    An op that has nothing left to do returns "exhausted"; its loop then ends, uncounted.
    """
    if duration_s is None and count is None:
        raise ValueError("give a duration or a count")
    result = LoadResult(frozenset(ok))
    issued = 0
    start = time.perf_counter()
    deadline = start + duration_s if duration_s is not None else float("inf")

    async def loop() -> None:
        nonlocal issued
        while time.perf_counter() < deadline and (count is None or issued < count):
            issued += 1
            t0 = time.perf_counter()
            try:
                label = await op()
            except Exception as exc:
                label = type(exc).__name__
            if label == "exhausted":
                return
            result.latencies_ms.append((time.perf_counter() - t0) * 1000)
            result.outcomes[label] += 1

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - start
    return result

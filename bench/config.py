"""How long and how hard each phase runs: `--quick` (< 60 s on 2 cores) or the default (~3 min)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT", "QUICK", "Plan"]


@dataclass(frozen=True)
class Plan:
    name: str
    concurrency: int  # closed-loop connections for the load phases
    warmup: int  # requests sent (and not counted) before each timed load phase
    floor_s: float  # seconds of load on the floor app
    starts_s: float  # seconds of verify starts
    checks_s: float  # seconds of wrong-code checks (ends early when the started ids run out)
    latency_n: int  # sequential starts timed up to their outbox write
    memory_n: int  # starts in the memory batch
    jwt_n: int  # JWT starts (and as many Basic starts, back to back, to compare)
    profile_s: float  # seconds of starts under py-spy with --profile
    silent_n: int  # sequential full silent-auth flows (start → hops → check → summary webhook)
    webhooks_n: int  # webhook messages enqueued at once for the delivery-throughput phase
    pending_levels: tuple[int, ...]  # pending verifications in Redis for the start-latency runs
    pending_n: int  # sequential starts timed at each level (and against the floor)
    provider_sends_n: int  # SMS sent through the sandbox and the SMPP provider (window 10)


QUICK = Plan(
    name="quick",
    concurrency=32,
    warmup=200,
    floor_s=5,
    starts_s=6,
    checks_s=4,
    latency_n=200,
    memory_n=2000,
    jwt_n=400,
    profile_s=8,
    silent_n=100,
    webhooks_n=2000,
    pending_levels=(1_000, 100_000),
    pending_n=200,
    provider_sends_n=2000,
)
DEFAULT = Plan(
    name="default",
    concurrency=32,
    warmup=500,
    floor_s=20,
    starts_s=30,
    checks_s=15,
    latency_n=1000,
    memory_n=5000,
    jwt_n=2000,
    profile_s=20,
    silent_n=500,
    webhooks_n=10_000,
    pending_levels=(1_000, 100_000, 1_000_000),
    pending_n=1000,
    provider_sends_n=10_000,
)

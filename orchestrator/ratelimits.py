"""Programmable rate limits (Twilio RateLimits and Buckets), enforced on verification starts."""

from __future__ import annotations

from redis.asyncio import Redis

__all__ = ["consume"]


async def consume(redis: Redis, service_sid: str, values: dict[str, str]) -> None:
    """Count one start against every bucket of the named rate limits; RateLimited when over."""
    # filled in with the RateLimits/Buckets resources
    return None

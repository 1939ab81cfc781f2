"""Providers by name, chosen per channel in settings (`channel_providers`)."""

from __future__ import annotations

from redis.asyncio import Redis

from orchestrator.settings import Settings
from workers.providers.base import Provider

__all__ = ["build_providers"]


def build_providers(settings: Settings, redis: Redis) -> dict[str, Provider]:
    """One provider per channel. "sandbox" is only honoured while the sandbox is on."""
    by_name: dict[str, Provider] = {}
    chosen: dict[str, Provider] = {}
    for channel, name in settings.channel_providers.items():
        if channel == "silent_auth":
            continue  # silent auth goes through an operator, not a message provider
        if name not in by_name:
            by_name[name] = _make(name, settings, redis)
        if name == "sandbox" and not settings.sandbox:
            continue
        chosen[channel] = by_name[name]
    return chosen


def _make(name: str, settings: Settings, redis: Redis) -> Provider:
    if name == "sandbox":
        from workers.providers.sandbox import SandboxProvider

        return SandboxProvider(redis)
    if name == "smtp":
        from workers.providers.smtp import SmtpProvider

        return SmtpProvider(settings)
    raise ValueError(f"unknown provider {name!r}; known: sandbox, smtp")

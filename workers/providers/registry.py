"""The configured providers, built by name from the providers file (or channel_providers)."""

from __future__ import annotations

from redis.asyncio import Redis

from orchestrator.delivery.providers_file import Delivery, SandboxConfig, SmtpConfig
from orchestrator.delivery.smpp import SmppConfig
from orchestrator.delivery.twilio import TwilioConfig
from orchestrator.delivery.vonage import VonageConfig
from orchestrator.delivery.whatsapp_cloud import WhatsAppCloudConfig
from orchestrator.settings import Settings
from workers.providers.base import Provider, ProviderContext

__all__ = ["build_providers"]


def build_providers(
    delivery: Delivery, settings: Settings, redis: Redis, context: ProviderContext
) -> dict[str, Provider]:
    """One provider per configured name; the routes say which to try for a message."""
    return {name: _make(name, delivery, settings, redis, context) for name in delivery.providers}


def _make(
    name: str, delivery: Delivery, settings: Settings, redis: Redis, context: ProviderContext
) -> Provider:
    # imported per kind: a deployment that uses none of SMPP's code never loads it
    config = delivery.providers[name]
    if isinstance(config, SandboxConfig):
        from workers.providers.sandbox import SandboxProvider

        return SandboxProvider(redis)
    if isinstance(config, SmtpConfig):
        from workers.providers.smtp import SmtpProvider

        return SmtpProvider(settings)
    if isinstance(config, TwilioConfig):
        from workers.providers.twilio import TwilioProvider

        return TwilioProvider(name, config, context)
    if isinstance(config, VonageConfig):
        from workers.providers.vonage import VonageProvider

        return VonageProvider(name, config, context)
    if isinstance(config, WhatsAppCloudConfig):
        from workers.providers.whatsapp_cloud import WhatsAppCloudProvider

        return WhatsAppCloudProvider(name, config, context)
    from workers.providers.smpp.provider import SmppProvider

    assert isinstance(config, SmppConfig)
    return SmppProvider(name, config, context)

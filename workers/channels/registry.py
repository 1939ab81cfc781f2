"""Channel adapters by name."""

from __future__ import annotations

from orchestrator.settings import Settings
from workers.channels.base import ChannelAdapter
from workers.channels.text import EmailChannel, SmsChannel, VoiceChannel, WhatsAppChannel

__all__ = ["adapter_for", "build_adapters"]


def build_adapters(settings: Settings) -> dict[str, ChannelAdapter]:
    adapters: list[ChannelAdapter] = [
        SmsChannel(),
        WhatsAppChannel(),
        VoiceChannel(),
        EmailChannel(settings.smtp_from),
    ]
    return {a.name: a for a in adapters}


def adapter_for(adapters: dict[str, ChannelAdapter], channel: str) -> ChannelAdapter:
    try:
        return adapters[channel]
    except KeyError:
        raise LookupError(f"no channel adapter for {channel!r}") from None

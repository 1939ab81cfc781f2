"""Channels know *what* to send for a step: the message, in the user's language."""

from workers.channels.base import ChannelAdapter, OutboundMessage
from workers.channels.registry import adapter_for

__all__ = ["ChannelAdapter", "OutboundMessage", "adapter_for"]

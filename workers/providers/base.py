"""The provider base class: one `send()` that raises ProviderError when delivery failed."""

from __future__ import annotations

from abc import ABC, abstractmethod

from workers.channels.base import OutboundMessage

__all__ = ["Provider", "ProviderError"]


class ProviderError(Exception):
    """The provider refused or could not take the message; the step fails over."""


class Provider(ABC):
    name: str

    @abstractmethod
    async def send(self, message: OutboundMessage) -> None:
        """Hand `message` over for delivery. Sending the same message id twice sends it once."""

    async def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract duty
        """Release connections; most providers hold none."""

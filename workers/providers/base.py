"""The provider base class: one `send()` that raises ProviderError when delivery failed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from workers.channels.base import OutboundMessage

__all__ = ["Accepted", "Provider", "ProviderError"]


@dataclass(frozen=True)
class Accepted:
    """The provider took the message; `provider_id` is the id its delivery receipts will name."""

    provider_id: str


class ProviderError(Exception):
    """The provider refused or could not take the message; the step fails over."""


class Provider(ABC):
    name: str

    @abstractmethod
    async def send(self, message: OutboundMessage) -> Accepted | None:
        """Hand `message` over for delivery; None when the provider gives no id to track.

        Raise ProviderError when the provider refused it, erred or could not be reached.
        """

    async def start(self) -> None:  # noqa: B027 - an optional hook, not an abstract duty
        """Open long-lived connections (an SMPP bind); HTTP providers need none."""

    async def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract duty
        """Release connections; most providers hold none."""

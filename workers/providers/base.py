"""The provider base class: one `send()` that raises ProviderError when delivery failed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from orchestrator.delivery.receipts import Receipt
from workers.channels.base import OutboundMessage

__all__ = ["Accepted", "Provider", "ProviderContext", "ProviderError"]


@dataclass(frozen=True)
class Accepted:
    """The provider took the message; `provider_id` is the id its delivery receipts will name."""

    provider_id: str


@dataclass(frozen=True)
class ProviderContext:
    """What the worker lends every configured provider.

    `status_url(name)` is where the vendor posts receipts (`{public_url}/providers/{name}/status`);
    `gather_url(name, token)` where a voice call's keypad answer goes; `seal` encrypts what such a
    URL carries (the web process opens it with the same key); `on_receipt(name, receipt)` is how an
    in-band receipt (SMPP deliver_sm) reaches the workflow.
    """

    http: aiohttp.ClientSession
    public_url: str
    seal: Callable[[str], str]
    on_receipt: Callable[[str, Receipt], Awaitable[None]]

    def status_url(self, name: str) -> str:
        return f"{self.public_url.rstrip('/')}/providers/{name}/status"

    def gather_url(self, name: str, token: str) -> str:
        return f"{self.public_url.rstrip('/')}/providers/{name}/gather?t={token}"


class ProviderError(Exception):
    """The provider refused or could not take the message; the step fails over."""


class Provider(ABC):
    name: str
    # True: sending one message id twice delivers it once (the sandbox outbox checks the id);
    # the dispatcher then writes no send claims for it, saving two Redis round trips a send
    dedupes_by_message_id: bool = False

    @abstractmethod
    async def send(self, message: OutboundMessage) -> Accepted | None:
        """Hand `message` over for delivery; None when the provider gives no id to track.

        Raise ProviderError when the provider refused it, erred or could not be reached.
        """

    async def start(self) -> None:  # noqa: B027 - an optional hook, not an abstract duty
        """Open long-lived connections (an SMPP bind); HTTP providers need none."""

    async def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract duty
        """Release connections; most providers hold none."""

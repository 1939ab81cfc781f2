"""The channel base class and the message every channel hands its provider."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from orchestrator.domain.models import Step, Verification

__all__ = ["ChannelAdapter", "OutboundMessage"]


@dataclass(frozen=True)
class OutboundMessage:
    """One message for a provider. `id` is stable across retries, so providers can dedupe."""

    id: str
    tenant: str
    request_id: str
    channel: str
    to: str
    sender: str
    text: str
    code: str
    locale: str
    subject: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ChannelAdapter(ABC):
    name: str

    @abstractmethod
    def compose(self, v: Verification, step_index: int, code: str) -> OutboundMessage:
        """Build the message for step `step_index` of `v` carrying `code`."""

    @staticmethod
    def minutes(v: Verification) -> int:
        return max(1, round(v.channel_timeout / 60))

    @staticmethod
    def message_id(v: Verification, step_index: int) -> str:
        return f"{v.request_id}:{step_index}"

    def _message(
        self,
        v: Verification,
        step_index: int,
        step: Step,
        code: str,
        text: str,
        subject: str | None = None,
        sender: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> OutboundMessage:
        return OutboundMessage(
            id=self.message_id(v, step_index),
            tenant=v.account or v.tenant,
            request_id=v.request_id,
            channel=self.name,
            to=step.to,
            sender=step.sender or sender or v.brand,
            text=text,
            code=code,
            locale=v.locale,
            subject=subject,
            extra=dict(extra or {}),
        )

"""SMS, WhatsApp, voice and email: templated texts from orchestrator.messages."""

from __future__ import annotations

from orchestrator import messages
from orchestrator.domain.models import Verification

from .base import ChannelAdapter, OutboundMessage

__all__ = ["EmailChannel", "SmsChannel", "VoiceChannel", "WhatsAppChannel"]


class SmsChannel(ChannelAdapter):
    name = "sms"

    def compose(self, v: Verification, step_index: int, code: str) -> OutboundMessage:
        step = v.steps[step_index]
        rendered = messages.render(
            "sms", v.locale, brand=v.brand, code=code, minutes=self.minutes(v)
        )
        text = rendered.text
        app_hash = step.options.get("app_hash")
        if app_hash:
            # Android's SMS Retriever reads the app hash from the message's last line
            text = f"{text}\n{app_hash}"
        return self._message(v, step_index, step, code, text)


class WhatsAppChannel(ChannelAdapter):
    name = "whatsapp"

    def compose(self, v: Verification, step_index: int, code: str) -> OutboundMessage:
        step = v.steps[step_index]
        rendered = messages.render(
            "whatsapp", v.locale, brand=v.brand, code=code, minutes=self.minutes(v)
        )
        return self._message(v, step_index, step, code, rendered.text)


class VoiceChannel(ChannelAdapter):
    name = "voice"

    def compose(self, v: Verification, step_index: int, code: str) -> OutboundMessage:
        step = v.steps[step_index]
        rendered = messages.render(
            "voice", v.locale, brand=v.brand, code=code, minutes=self.minutes(v)
        )
        return self._message(v, step_index, step, code, rendered.text)


class EmailChannel(ChannelAdapter):
    name = "email"

    def __init__(self, default_sender: str) -> None:
        self.default_sender = default_sender

    def compose(self, v: Verification, step_index: int, code: str) -> OutboundMessage:
        step = v.steps[step_index]
        rendered = messages.render(
            "email", v.locale, brand=v.brand, code=code, minutes=self.minutes(v)
        )
        return self._message(
            v,
            step_index,
            step,
            code,
            rendered.text,
            subject=rendered.subject,
            sender=self.default_sender,
        )

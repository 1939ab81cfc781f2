"""SMS, WhatsApp, voice and email: templated texts from orchestrator.messages."""

from __future__ import annotations

from typing import Any

from orchestrator.domain.models import Step, Verification
from orchestrator.engine import messages
from orchestrator.templates import placeholders
from workers.channels.base import ChannelAdapter, OutboundMessage

__all__ = ["EmailChannel", "SmsChannel", "VoiceChannel", "WhatsAppChannel"]


def _option(step: Step, key: str) -> str | None:
    """A non-empty string option of the step, else None (options are kept verbatim)."""
    value = step.options.get(key)
    return value if isinstance(value, str) and value else None


def _render(
    channel: str, adapter: ChannelAdapter, v: Verification, step: Step, code: str
) -> messages.RenderedMessage:
    """Render `channel`'s text with the step's per-message options (PSD2, DTMF, warning); an
    author's template (`template_text`, fixed on the step at start) replaces the catalogue's for
    SMS, WhatsApp and voice (email keeps the catalogue's subject and body)."""
    authored = _option(step, "template_text")
    if authored is not None and channel != "email":
        minutes = adapter.minutes(v)
        spoken = ", ".join(code) if channel == "voice" else code
        values = {
            "brand": v.brand,
            "code": spoken,
            "time-limit": str(minutes),
            "time-limit-unit": "minute" if minutes == 1 else "minutes",
        }
        return messages.RenderedMessage(
            locale=v.locale, text=placeholders.render(authored, values), subject=None
        )
    return messages.render(
        channel,
        v.locale,
        brand=v.brand,
        code=code,
        minutes=adapter.minutes(v),
        amount=_option(step, "amount"),
        payee=_option(step, "payee"),
        dtmf_digit=_option(step, "dtmf_digit") if channel == "voice" else None,
        do_not_share=step.options.get("do_not_share_warning") is True,
    )


class SmsChannel(ChannelAdapter):
    name = "sms"

    def compose(self, v: Verification, step_index: int, code: str) -> OutboundMessage:
        step = v.steps[step_index]
        text = _render("sms", self, v, step, code).text
        app_hash = _option(step, "app_hash")
        if app_hash:
            # Android's SMS Retriever reads the app hash from the message's last line
            text = f"{text}\n{app_hash}"
        return self._message(v, step_index, step, code, text)


class WhatsAppChannel(ChannelAdapter):
    name = "whatsapp"

    def compose(self, v: Verification, step_index: int, code: str) -> OutboundMessage:
        step = v.steps[step_index]
        rendered = _render("whatsapp", self, v, step, code)
        return self._message(v, step_index, step, code, rendered.text)


class VoiceChannel(ChannelAdapter):
    name = "voice"

    # what a voice provider needs besides the script: digits to dial once the call connects
    # (an extension), the key the callee must press before the code is read, the TTS voice
    _EXTRA_KEYS = ("send_digits", "dtmf_digit", "tts_name")

    def compose(self, v: Verification, step_index: int, code: str) -> OutboundMessage:
        step = v.steps[step_index]
        rendered = _render("voice", self, v, step, code)
        extra = {key: value for key in self._EXTRA_KEYS if (value := _option(step, key))}
        if "dtmf_digit" in extra:
            # a provider that gathers the key press reads the prompt first and the rest (the
            # code) only once the key is pressed: the prompt is what the key adds to the script
            plain = messages.render(
                "voice",
                v.locale,
                brand=v.brand,
                code=code,
                minutes=self.minutes(v),
                amount=_option(step, "amount"),
                payee=_option(step, "payee"),
                do_not_share=step.options.get("do_not_share_warning") is True,
            ).text
            if rendered.text.endswith(plain) and len(rendered.text) > len(plain):
                extra["dtmf_prompt"] = rendered.text[: -len(plain)].strip()
        return self._message(v, step_index, step, code, rendered.text, extra=extra)


class EmailChannel(ChannelAdapter):
    name = "email"

    def __init__(self, default_sender: str) -> None:
        self.default_sender = default_sender

    def compose(self, v: Verification, step_index: int, code: str) -> OutboundMessage:
        step = v.steps[step_index]
        rendered = _render("email", self, v, step, code)
        extra: dict[str, Any] = {
            key: value for key in ("from_name", "template_id") if (value := _option(step, key))
        }
        substitutions = step.options.get("substitutions")
        if isinstance(substitutions, dict):
            # for a provider's dynamic template (SendGrid); the plain text stays the template's
            kept = {
                k: s for k, s in substitutions.items() if isinstance(k, str) and isinstance(s, str)
            }
            if kept:
                extra["substitutions"] = kept
        return self._message(
            v,
            step_index,
            step,
            code,
            rendered.text,
            subject=rendered.subject,
            sender=self.default_sender,
            extra=extra,
        )

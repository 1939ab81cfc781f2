"""Twilio: SMS (and WhatsApp) through Messages.json, verification calls through Calls.json.

The only part of the Twilio provider that touches the network; forms' contents, TwiML and
receipts come from `orchestrator.delivery.twilio`. Every form field sent is one of Twilio's
CreateMessageRequest / CreateCallRequest (API v2010) fields.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp

from orchestrator.delivery.twilio import CALL_STATUS_EVENTS, TwilioConfig, call_twiml
from workers.channels.base import OutboundMessage
from workers.providers.base import Accepted, Provider, ProviderContext, ProviderError

__all__ = ["TwilioProvider"]

_API = "/2010-04-01/Accounts/{sid}/{resource}.json"
_TWIML_LIMIT = 4000  # characters Calls.json takes in Twiml
_REASON_LIMIT = 120  # how much of Twilio's error message a ProviderError keeps


class TwilioProvider(Provider):
    """One `[providers.<name>]` of kind twilio, sending over the worker's shared session."""

    def __init__(self, name: str, config: TwilioConfig, context: ProviderContext) -> None:
        self.name = name
        self.config = config
        self.context = context
        # HTTP Basic by hand: aiohttp.BasicAuth is deprecated from 3.14, its successor absent before
        credentials = f"{config.account_sid}:{config.auth_token.get_secret_value()}"
        self._headers = {
            "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()
        }

    async def send(self, message: OutboundMessage) -> Accepted:
        if message.channel not in self.config.channels:
            raise ProviderError(f"twilio: provider {self.name} does not carry {message.channel}")
        if message.channel == "voice":
            return await self._post("Calls", self.call_form(message))
        return await self._post("Messages", self.message_form(message))

    def message_form(self, message: OutboundMessage) -> list[tuple[str, str]]:
        """Messages.json: To, the sender (a messaging service's pool, else From), Body or a
        WhatsApp template, and where Twilio posts the message's statuses."""
        config = self.config
        whatsapp = message.channel == "whatsapp"
        prefix = "whatsapp:" if whatsapp else ""
        form = [("To", f"{prefix}+{message.to.lstrip('+')}")]
        if config.messaging_service_sid:
            form.append(("MessagingServiceSid", config.messaging_service_sid))
        else:
            sender = (config.whatsapp_from if whatsapp else None) or config.from_ or ""
            form.append(("From", prefix + sender))
        if whatsapp and config.whatsapp_content_sid:
            # a business-initiated WhatsApp message must be an approved template
            form.append(("ContentSid", config.whatsapp_content_sid))
            form.append(("ContentVariables", json.dumps({"1": message.code})))
        else:
            form.append(("Body", message.text))
        form.append(("StatusCallback", self.context.status_url(self.name)))
        return form

    def call_form(self, message: OutboundMessage) -> list[tuple[str, str]]:
        """Calls.json: To, From, the TwiML inline, and every call progress event posted back
        (a list field is sent as the name repeated, once per value)."""
        config = self.config
        twiml = call_twiml(
            config,
            message.text,
            message.locale,
            message.extra,
            seal=self.context.seal,
            gather_url=lambda token: self.context.gather_url(self.name, token),
        )
        if len(twiml) > _TWIML_LIMIT:
            raise ProviderError(f"twilio: the call's TwiML is over {_TWIML_LIMIT} characters")
        form = [
            ("To", f"+{message.to.lstrip('+')}"),
            ("From", config.caller_id or ""),
            ("Twiml", twiml),
            ("StatusCallback", self.context.status_url(self.name)),
            ("StatusCallbackMethod", "POST"),
            *(("StatusCallbackEvent", event) for event in CALL_STATUS_EVENTS),
            ("TimeLimit", str(config.call_time_limit_seconds)),
        ]
        send_digits = message.extra.get("send_digits")
        if isinstance(send_digits, str) and send_digits:
            form.append(("SendDigits", send_digits))
        if config.machine_detection:
            form.append(("MachineDetection", config.machine_detection))
        return form

    async def _post(self, resource: str, form: list[tuple[str, str]]) -> Accepted:
        url = self.config.base_url + _API.format(sid=self.config.account_sid, resource=resource)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
        try:
            async with self.context.http.post(
                url, data=form, headers=self._headers, timeout=timeout
            ) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError:
            raise  # aiohttp's timeouts are TimeoutErrors: the caller tells a hang from a refusal
        except aiohttp.ClientError as exc:
            raise ProviderError(
                f"twilio: {resource}.json unreachable ({type(exc).__name__})"
            ) from None
        body = _json(raw)
        if status >= 300:
            raise ProviderError(_error(status, body))
        sid = body.get("sid") if isinstance(body, dict) else None
        if not isinstance(sid, str) or not sid:
            raise ProviderError(f"twilio: HTTP {status} without a {resource[:-1].lower()} sid")
        return Accepted(sid)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both
        return None


def _error(status: int, body: Any) -> str:
    """'twilio <code>: <message>' from Twilio's error body, cut short; the status otherwise."""
    if isinstance(body, dict) and body.get("code") is not None:
        message = str(body.get("message") or "").strip()
        if len(message) > _REASON_LIMIT:
            message = message[: _REASON_LIMIT - 1] + "…"
        return f"twilio {body['code']}: {message or f'HTTP {status}'}"
    return f"twilio: HTTP {status}"

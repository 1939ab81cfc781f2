"""Vonage: SMS through the SMS API or the Messages API, WhatsApp through the Messages API, and
voice calls through the Voice API with an NCCO (talk, and input when a key must be pressed).

The SMS API takes a form with api_key/api_secret and answers 200 even when it refuses: the
verdict is `messages[].status` ("0" is success). The Messages and Voice APIs take JSON with a
JWT (RS256, signed with the application's private key) and answer RFC 7807 problem bodies.

WhatsApp: a business can only open a conversation (outside the 24-hour customer window, which
is where a verification code always is) with an approved template, and authentication
templates carry a copy-code button. The current SDK's `template` message type
(vonage_messages.WhatsappTemplate) sends only body parameters; Vonage documents the `custom`
type, which passes WhatsApp's own template object through, for templates with buttons. So this
sends `custom` with the same template JSON Meta's Cloud API takes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp
import jwt

from orchestrator.delivery.vonage import VonageConfig
from orchestrator.delivery.whatsapp_cloud import template_language
from workers.channels.base import OutboundMessage
from workers.providers.base import Accepted, Provider, ProviderContext, ProviderError

__all__ = ["VonageProvider", "is_gsm7", "tts_language"]

_MAX_REASON = 200
_JWT_LIFETIME = 15 * 60  # what Vonage's own SDK gives its application tokens
_DTMF_TIMEOUT = 10  # seconds the input action waits for the key (the NCCO maximum)

# GSM 03.38: the default alphabet, and the extension table (each costs an escape, still GSM-7)
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    "\f^{}\\[~]|€"
)

# The Voice API's text-to-speech languages (its `language` enum), and which one a bare
# language gets when the locale's region has none of its own
_TTS_LANGUAGES = frozenset(
    {
        "ar", "ca-ES", "cmn-CN", "cmn-TW", "cs-CZ", "cy-GB", "da-DK", "de-DE", "el-GR",
        "en-AU", "en-GB", "en-GB-WLS", "en-IN", "en-US", "en-ZA", "es-ES", "es-MX", "es-US",
        "eu-ES", "fi-FI", "fil-PH", "fr-CA", "fr-FR", "he-IL", "hi-IN", "hu-HU", "id-ID",
        "is-IS", "it-IT", "ja-JP", "ko-KR", "nb-NO", "nl-NL", "no-NO", "pl-PL", "pt-BR",
        "pt-PT", "ro-RO", "ru-RU", "sk-SK", "sv-SE", "th-TH", "tr-TR", "uk-UA", "vi-VN",
        "yue-CN",
    }
)  # fmt: skip
_TTS_DEFAULTS: Mapping[str, str] = {
    "ar": "ar", "ca": "ca-ES", "zh": "cmn-CN", "cs": "cs-CZ", "cy": "cy-GB", "da": "da-DK",
    "de": "de-DE", "el": "el-GR", "en": "en-US", "es": "es-ES", "eu": "eu-ES", "fi": "fi-FI",
    "fil": "fil-PH", "tl": "fil-PH", "fr": "fr-FR", "he": "he-IL", "iw": "he-IL",
    "hi": "hi-IN", "hu": "hu-HU", "id": "id-ID", "is": "is-IS", "it": "it-IT", "ja": "ja-JP",
    "ko": "ko-KR", "nb": "nb-NO", "no": "nb-NO", "nl": "nl-NL", "pl": "pl-PL", "pt": "pt-BR",
    "ro": "ro-RO", "ru": "ru-RU", "sk": "sk-SK", "sv": "sv-SE", "th": "th-TH", "tr": "tr-TR",
    "uk": "uk-UA", "vi": "vi-VN", "yue": "yue-CN",
}  # fmt: skip
_TTS_REGIONS: Mapping[str, str] = {"zh-tw": "cmn-TW", "zh-hk": "yue-CN", "zh-cn": "cmn-CN"}
_TTS_FALLBACK = "en-US"


def is_gsm7(text: str) -> bool:
    """True when `text` fits the GSM 03.38 alphabet, so the SMS API may send it as `text`."""
    return all(ch in _GSM7 for ch in text)


def tts_language(locale: str) -> str:
    """The Voice API language for a locale ("en-gb" -> "en-GB", "ar-xa" -> "ar", "zh-tw" ->
    "cmn-TW"); the language's main voice when its region has none; en-US when Vonage reads no
    such language (the call then still carries the code, in the wrong accent)."""
    parts = locale.replace("_", "-").lower().split("-")
    if "-".join(parts[:2]) in _TTS_REGIONS:
        return _TTS_REGIONS["-".join(parts[:2])]
    if len(parts) > 1 and f"{parts[0]}-{parts[1].upper()}" in _TTS_LANGUAGES:
        return f"{parts[0]}-{parts[1].upper()}"
    return _TTS_DEFAULTS.get(parts[0], _TTS_FALLBACK)


def _reason(text: object) -> str:
    """The vendor's reason, one short line (Vonage never echoes credentials in it)."""
    return " ".join(str(text).split())[:_MAX_REASON]


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None


class VonageProvider(Provider):
    """Sends each channel through the Vonage API the configuration names for it."""

    def __init__(self, name: str, config: VonageConfig, context: ProviderContext) -> None:
        self.name = name
        self._config = config
        self._context = context
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_seconds)

    # -- what goes on the wire (public: the tests read them) --

    def sms_form(self, message: OutboundMessage) -> dict[str, str]:
        """The SMS API's form fields (`NewMessage` of its OpenAPI)."""
        c = self._config
        assert c.api_key is not None and c.api_secret is not None  # the config requires them
        return {
            "api_key": c.api_key,
            "api_secret": c.api_secret.get_secret_value(),
            "from": message.sender,
            "to": message.to.lstrip("+"),
            "text": message.text,
            "type": "text" if is_gsm7(message.text) else "unicode",
            "callback": self._context.status_url(self.name),
            "client-ref": message.id[:40],  # the API keeps up to 40 characters
        }

    def message_body(self, message: OutboundMessage) -> dict[str, Any]:
        """The Messages API v1 body: SMS text, or WhatsApp's authentication template."""
        common = {
            "to": message.to.lstrip("+"),
            "client_ref": message.id,
            # per message, so the status webhook comes to this provider's URL whatever the
            # application's dashboard says
            "webhook_url": self._context.status_url(self.name),
        }
        if message.channel == "sms":
            return {
                **common,
                "message_type": "text",
                "channel": "sms",
                "from": message.sender,
                "text": message.text,
            }
        c = self._config
        code = [{"type": "text", "text": message.code}]
        components: list[dict[str, Any]] = [{"type": "body", "parameters": code}]
        if c.whatsapp_copy_code_button:
            # WhatsApp's schema has the button index as a string; 0 is the only button
            components.append(
                {"type": "button", "sub_type": "url", "index": "0", "parameters": code}
            )
        language = c.whatsapp_language or template_language(message.locale)
        return {
            **common,
            "message_type": "custom",
            "channel": "whatsapp",
            "from": c.whatsapp_from,
            "custom": {
                "type": "template",
                "template": {
                    "name": c.whatsapp_template,
                    "language": {"policy": "deterministic", "code": language},
                    "components": components,
                },
            },
        }

    def _talk(self, text: str, language: str, **more: Any) -> dict[str, Any]:
        talk: dict[str, Any] = {"action": "talk", "text": text, "language": language, **more}
        if self._config.voice_premium:
            talk["premium"] = True
        return talk

    def ncco(self, message: OutboundMessage) -> list[dict[str, Any]]:
        """The call's NCCO: the script read out; or, with `dtmf_digit`, the prompt (which the
        callee may cut short by pressing) and an input action whose result goes to the gather
        URL, which reads the script only if the right key came (orchestrator.delivery.vonage)."""
        language = tts_language(message.locale)
        digit = message.extra.get("dtmf_digit")
        if not isinstance(digit, str) or not digit:
            return [self._talk(message.text, language)]
        prompt = message.extra.get("dtmf_prompt")
        if isinstance(prompt, str) and prompt and message.text.startswith(prompt):
            script = message.text[len(prompt) :].strip()
        else:
            # no prompt to split off: ask in English, keep the whole text as the script
            prompt, script = f"Press {digit}.", message.text
        sealed = json.dumps({"d": digit, "s": script, "l": language}, separators=(",", ":"))
        gather = self._context.gather_url(self.name, self._context.seal(sealed))
        return [
            self._talk(prompt, language, bargeIn=True),
            {
                "action": "input",
                "type": ["dtmf"],
                "dtmf": {"maxDigits": 1, "timeOut": _DTMF_TIMEOUT},
                "eventUrl": [gather],
            },
        ]

    def call_body(self, message: OutboundMessage) -> dict[str, Any]:
        """The Voice API's create-call body (`CreateCallRequestNcco`)."""
        to: dict[str, Any] = {"type": "phone", "number": message.to.lstrip("+")}
        send_digits = message.extra.get("send_digits")
        if isinstance(send_digits, str) and send_digits:
            # Twilio's wait character is "w"; Vonage's half-second pause is "p"
            to["dtmfAnswer"] = send_digits.replace("w", "p").replace("W", "pp")
        return {
            "to": [to],
            "from": {"type": "phone", "number": self._config.voice_from},
            "ncco": self.ncco(message),
            "event_url": [self._context.status_url(self.name)],
        }

    def application_jwt(self) -> str:
        """A short-lived RS256 token for the application, the claims Vonage's SDK puts in."""
        now = int(time.time())
        claims = {
            "application_id": self._config.application_id,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "exp": now + _JWT_LIFETIME,
        }
        return jwt.encode(claims, self._config.jwt_key, algorithm="RS256")

    # -- sending --

    async def send(self, message: OutboundMessage) -> Accepted:
        """Raises ProviderError ("vonage <api> <code>: <reason>") when Vonage refuses, errs or
        can't be reached; lets TimeoutError out when it hangs past timeout_seconds."""
        if message.channel not in self._config.channels:
            # the config only holds the credentials of the channels it lists
            raise ProviderError(f"vonage: not configured for {message.channel}")
        if message.channel == "voice":
            return await self._send_call(message)
        if message.channel == "sms" and self._config.sms_api == "sms":
            return await self._send_sms(message)
        return await self._send_message(message)

    async def _post(self, api: str, url: str, **kw: Any) -> tuple[int, bytes]:
        try:
            async with self._context.http.post(url, timeout=self._timeout, **kw) as response:
                return response.status, await response.read()
        except TimeoutError:
            raise
        except aiohttp.ClientError as exc:
            raise ProviderError(f"vonage {api}: can't reach it ({type(exc).__name__})") from None

    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.application_jwt()}"}

    async def _send_sms(self, message: OutboundMessage) -> Accepted:
        url = f"{self._config.rest_base_url.rstrip('/')}/sms/json"
        status, raw = await self._post("sms", url, data=self.sms_form(message))
        answer = _json(raw)
        if status != 200 or not isinstance(answer, dict):
            raise ProviderError(f"vonage sms HTTP {status}: no SMS API answer")
        parts = answer.get("messages")
        if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) for p in parts):
            raise ProviderError("vonage sms: answer without messages")
        for part in parts:
            # one entry per SMS part of a long text; any refused part fails the send
            if str(part.get("status")) != "0":
                code, text = part.get("status"), _reason(part.get("error-text", ""))
                raise ProviderError(f"vonage sms {code}: {text}")
        message_id = parts[0].get("message-id")
        if not isinstance(message_id, str) or not message_id:
            raise ProviderError("vonage sms: accepted without a message-id")
        return Accepted(message_id)

    async def _send_message(self, message: OutboundMessage) -> Accepted:
        url = f"{self._config.base_url.rstrip('/')}/v1/messages"
        status, raw = await self._post(
            "messages", url, json=self.message_body(message), headers=self._bearer()
        )
        answer = _json(raw)
        if status != 202:
            raise ProviderError(f"vonage messages {status}: {_problem(answer)}")
        uuid_ = answer.get("message_uuid") if isinstance(answer, dict) else None
        if not isinstance(uuid_, str) or not uuid_:
            raise ProviderError("vonage messages: accepted without a message_uuid")
        return Accepted(uuid_)

    async def _send_call(self, message: OutboundMessage) -> Accepted:
        url = f"{self._config.base_url.rstrip('/')}/v1/calls"
        status, raw = await self._post(
            "voice", url, json=self.call_body(message), headers=self._bearer()
        )
        answer = _json(raw)
        if status != 201:
            raise ProviderError(f"vonage voice {status}: {_problem(answer)}")
        uuid_ = answer.get("uuid") if isinstance(answer, dict) else None
        if not isinstance(uuid_, str) or not uuid_:
            raise ProviderError("vonage voice: created without a call uuid")
        return Accepted(uuid_)


def _problem(answer: object) -> str:
    """An RFC 7807 body's title (and detail), or a note that there was none."""
    if not isinstance(answer, dict) or "title" not in answer:
        return "no problem details"
    title, detail = answer.get("title"), answer.get("detail")
    return _reason(f"{title}: {detail}" if detail else title)

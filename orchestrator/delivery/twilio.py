"""Twilio Programmable Messaging and Voice: configuration, TwiML, and the signed web callbacks.

Pure code (no network): the worker's `TwilioProvider` builds its forms and TwiML from here, and
the web process checks what Twilio posts back with the same functions:

- `read_receipts` — StatusCallback posts for messages (MessageStatus) and calls (CallStatus);
- `answer_gather` — the keypad answer of a voice call that asked the callee to press a key
  before hearing the code (the liveness option): the code is read only after the right key.

Both verify `X-Twilio-Signature` first: base64(HMAC-SHA1(auth token, URL + each POST parameter's
name and value, sorted by name)). A request that fails it raises ForgedReceipt; a signed one that
is not a body Twilio sends raises BadReceipt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from orchestrator.delivery.receipts import BadReceipt, ForgedReceipt, Receipt, ReceiptRequest

__all__ = [
    "CALL_STATUS_EVENTS",
    "TwilioConfig",
    "answer_gather",
    "call_twiml",
    "read_receipts",
    "say_language",
    "signature",
    "split_prompt",
]

TWILIO_CHANNELS = ("sms", "whatsapp", "voice")
# every call progress event, so a call that is never answered fails the step at once
CALL_STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")

# Twilio's words for a message's and a call's fate; anything else (inbound "received", …) is
# not a delivery receipt and gives no Receipt
_MESSAGE_STATUS: dict[str, Literal["sent", "delivered", "failed"]] = {
    "queued": "sent",
    "accepted": "sent",
    "scheduled": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}
_CALL_STATUS: dict[str, Literal["sent", "delivered", "failed"]] = {
    "queued": "sent",
    "initiated": "sent",
    "ringing": "sent",
    "in-progress": "sent",
    "completed": "delivered",
    "busy": "failed",
    "no-answer": "failed",
    "failed": "failed",
    "canceled": "failed",
}


class TwilioConfig(BaseModel):
    """`[providers.<name>]` with `kind = "twilio"`.

    SMS goes from `messaging_service_sid` when set (Twilio picks a sender of the service's pool),
    else from `from`. Calls need an E.164 caller id: `voice_from`, else `from`. WhatsApp (opt-in:
    add "whatsapp" to `channels`) uses `whatsapp_from`, else `from`, as `whatsapp:+…`; outside a
    user-opened session WhatsApp only delivers an approved template, `whatsapp_content_sid`
    (its variable {{1}} gets the code).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: Literal["twilio"]
    channels: list[str] = Field(default_factory=lambda: ["sms", "voice"])
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    from_: str | None = Field(default=None, alias="from", min_length=1)
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    voice_from: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{1,14}$")
    whatsapp_from: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{1,14}$")
    whatsapp_content_sid: str | None = Field(default=None, pattern=r"^HX[0-9a-fA-F]{32}$")
    base_url: str = "https://api.twilio.com"
    timeout_seconds: float = Field(default=10, gt=0)
    # <Say voice=…>: "alice" speaks the most languages of one name; `voices` picks one per
    # language tag (e.g. "de-DE" = "Polly.Vicki-Neural"), a step's tts_name beats both
    voice: str | None = "alice"
    voices: dict[str, str] = Field(default_factory=dict)
    # Calls.json MachineDetection; off by default (it delays the script by seconds)
    machine_detection: Literal["Enable", "DetectMessageEnd"] | None = None
    # how long <Gather> waits for the key, and a cap on the call's length (Twilio's TimeLimit)
    gather_timeout_seconds: int = Field(default=8, ge=1, le=60)
    call_time_limit_seconds: int = Field(default=180, ge=10, le=14400)

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in TWILIO_CHANNELS]
        if unknown or not value or len(set(value)) != len(value):
            raise ValueError(f"must be distinct names out of {', '.join(TWILIO_CHANNELS)}")
        return value

    @model_validator(mode="after")
    def _senders(self) -> TwilioConfig:
        if "sms" in self.channels and not (self.from_ or self.messaging_service_sid):
            raise ValueError("sms needs `from` or `messaging_service_sid`")
        if "whatsapp" in self.channels and not (
            self.whatsapp_from or self.from_ or self.messaging_service_sid
        ):
            raise ValueError("whatsapp needs `whatsapp_from`, `from` or `messaging_service_sid`")
        if "voice" in self.channels and not _E164.fullmatch(self.caller_id or ""):
            raise ValueError("voice needs an E.164 caller id in `voice_from` or `from`")
        return self

    @property
    def caller_id(self) -> str | None:
        return self.voice_from or self.from_

    def voice_for(self, language: str, requested: str | None = None) -> str | None:
        return requested or self.voices.get(language) or self.voice


# ---------------------------------------------------------------- the signature


def _pairs(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(params.items()) if isinstance(params, Mapping) else list(params)


def signature(
    auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]] = ()
) -> str:
    """X-Twilio-Signature of a request: the URL, then every POST parameter as name + value,
    names sorted (a repeated name's values sorted too), HMAC-SHA1 under the auth token, base64.
    GET requests and JSON bodies sign the URL alone (pass no params)."""
    values: dict[str, set[str]] = {}
    for name, value in _pairs(params):
        values.setdefault(name, set()).add(value)
    signed = url + "".join(
        name + value for name in sorted(values) for value in sorted(values[name])
    )
    mac = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as called, without its port and with the default port: Twilio signs one of these
    depending on how the callback URL was written, as its own validators allow."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = userinfo + "@" if userinfo else ""
    default = 443 if parts.scheme == "https" else 80
    bare = urlunsplit(parts._replace(netloc=prefix + host))
    ported = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{parts.port or default}"))
    return list(dict.fromkeys([url, bare, ported]))


def _signed_fields(config: TwilioConfig, request: ReceiptRequest) -> list[tuple[str, str]]:
    """The request's parameters once its signature holds; ForgedReceipt otherwise."""
    given = request.headers.get("x-twilio-signature", "")
    if not given:
        raise ForgedReceipt("no X-Twilio-Signature")
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    fields: list[tuple[str, str]]
    signed: list[tuple[str, str]]
    if request.method.upper() == "GET":
        fields, signed = list(request.query.items()), []
    elif content_type == "application/json":
        # JSON bodies: the URL is signed, and carries the body's SHA-256 in bodySHA256
        digest = hashlib.sha256(request.body).hexdigest()
        if not hmac.compare_digest(request.query.get("bodySHA256", "").encode(), digest.encode()):
            raise ForgedReceipt("bodySHA256 does not match the body")
        fields, signed = [], []
    else:
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise ForgedReceipt("the body is not UTF-8, so Twilio did not sign it") from None
        fields = parse_qsl(text, keep_blank_values=True)
        signed = fields
    token = config.auth_token.get_secret_value()
    expected = given.encode("utf-8", "replace")
    if not any(
        hmac.compare_digest(signature(token, url, signed).encode(), expected)
        for url in _url_variants(request.url)
    ):
        raise ForgedReceipt("X-Twilio-Signature does not match")
    return fields


# ---------------------------------------------------------------- receipts


def read_receipts(config: TwilioConfig, request: ReceiptRequest) -> list[Receipt]:
    """The receipt in one StatusCallback post (a message's or a call's), once it is signed.

    Messages: MessageSid + MessageStatus (+ ErrorCode). Calls: CallSid + CallStatus; "completed"
    counts as delivered, busy / no-answer / failed / canceled as failed. Other statuses: [].
    """
    form = dict(_signed_fields(config, request))
    if "MessageSid" in form or "SmsSid" in form:
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        raw = form.get("MessageStatus") or form.get("SmsStatus") or ""
        table = _MESSAGE_STATUS
    elif "CallSid" in form:
        sid, raw, table = form["CallSid"], form.get("CallStatus", ""), _CALL_STATUS
    else:
        raise BadReceipt("neither MessageSid nor CallSid in the callback")
    if not _SID.fullmatch(sid):
        raise BadReceipt("the callback's sid is not a Twilio sid")
    if not raw:
        raise BadReceipt("the callback carries no status")
    status = table.get(raw.lower())
    if status is None:
        return []
    error = form.get("ErrorCode") or None
    return [Receipt(sid, status, error[:64] if error else None, raw[:32])]


# ---------------------------------------------------------------- TwiML


# Twilio's <Say> language tags where they are not simply language-REGION of our locale
_LANGUAGE_TAGS = {"tl-ph": "fil-PH"}
# a bare language gets its most common region; one we do not know falls back to en-US
_DEFAULT_REGIONS = {
    "ar": "XA", "da": "DK", "de": "DE", "en": "US", "es": "ES", "fi": "FI", "fr": "FR",
    "hi": "IN", "it": "IT", "ja": "JP", "ko": "KR", "nb": "NO", "nl": "NL", "pl": "PL",
    "pt": "BR", "ru": "RU", "sv": "SE", "tr": "TR", "zh": "CN",
}  # fmt: skip
_FALLBACK_LANGUAGE = "en-US"


def say_language(locale: str) -> str:
    """Our locale ("en-us", "de_DE", "pt") as a <Say language=…> tag ("en-US", "de-DE", "pt-BR")."""
    tag = locale.strip().replace("_", "-").lower()
    if tag in _LANGUAGE_TAGS:
        return _LANGUAGE_TAGS[tag]
    language, _, region = tag.partition("-")
    if not re.fullmatch(r"[a-z]{2,3}", language):
        return _FALLBACK_LANGUAGE
    if re.fullmatch(r"[a-z]{2}", region):
        return f"{language}-{region.upper()}"
    if language in _DEFAULT_REGIONS:
        return f"{language}-{_DEFAULT_REGIONS[language]}"
    return _FALLBACK_LANGUAGE


# what the call says when no key came, or the wrong one; a language missing here hangs up
# silently rather than speak a language the callee may not understand
_GOODBYE = {
    "en": "We did not receive your input. Goodbye.",
    "de": "Wir haben keine Eingabe erhalten. Auf Wiederhören.",
    "fr": "Nous n'avons reçu aucune saisie. Au revoir.",
    "es": "No hemos recibido ninguna respuesta. Adiós.",
    "it": "Non abbiamo ricevuto alcun input. Arrivederci.",
    "pt": "Não recebemos nenhuma resposta. Adeus.",
    "nl": "We hebben geen invoer ontvangen. Tot ziens.",
}
_WRONG_KEY = {
    "en": "That was not the right key. Goodbye.",
    "de": "Das war nicht die richtige Taste. Auf Wiederhören.",
    "fr": "Ce n'était pas la bonne touche. Au revoir.",
    "es": "Esa no era la tecla correcta. Adiós.",
    "it": "Non era il tasto giusto. Arrivederci.",
    "pt": "Essa não era a tecla certa. Adeus.",
    "nl": "Dat was niet de juiste toets. Tot ziens.",
}
# a sentence ends at ".", "!" or "?" before a space, or at an ideographic full stop / the
# fullwidth "!" and "?" (CJK scripts put no space after them)
_SENTENCE = re.compile(r"(.+?(?:[.!?](?=\s|$)|[\u3002\uff01\uff1f]))\s*(.*)", re.DOTALL)


def split_prompt(text: str, prompt: str | None) -> tuple[str, str]:
    """(the key prompt, the script after the key) of a voice text that starts with the prompt.

    Without the prompt given, its first sentence is the prompt (the templates put it first)."""
    if prompt:
        if text.startswith(prompt):
            return prompt, text[len(prompt) :].strip() or text
        return prompt, text
    match = _SENTENCE.match(text.strip())
    if match is None or not match.group(2):
        return text, text
    return match.group(1), match.group(2)


def _say(parent: ET.Element, text: str, language: str, voice: str | None) -> None:
    attributes = {"language": language, **({"voice": voice} if voice else {})}
    ET.SubElement(parent, "Say", attributes).text = text


def _phrase(table: Mapping[str, str], language: str) -> str | None:
    return table.get(language.split("-", 1)[0].lower())


def _document(root: ET.Element) -> str:
    # ElementTree escapes &, <, > in text and quotes in attributes
    return ET.tostring(root, encoding="unicode")


def call_twiml(
    config: TwilioConfig,
    text: str,
    locale: str,
    extra: Mapping[str, Any],
    *,
    seal: Callable[[str], str],
    gather_url: Callable[[str], str],
) -> str:
    """The TwiML of a verification call.

    Plain: the script in one <Say> (the text already spaces and repeats the code). With
    `extra["dtmf_digit"]`: <Gather> one key while saying the prompt, then a goodbye; the script
    rides sealed in the Gather action's URL (`gather_url(token)`) and `answer_gather` reads it
    out only after the right key, so a voicemail box never records the code.
    """
    language = say_language(locale)
    tts = extra.get("tts_name")
    voice = config.voice_for(language, tts if isinstance(tts, str) and tts else None)
    root = ET.Element("Response")
    digit = extra.get("dtmf_digit")
    if not isinstance(digit, str) or not digit:
        _say(root, text, language, voice)
        return _document(root)
    prompt_given = extra.get("dtmf_prompt")
    prompt, script = split_prompt(text, prompt_given if isinstance(prompt_given, str) else None)
    token = seal(
        json.dumps(
            {"d": digit, "s": script, "l": language, "v": voice},
            ensure_ascii=False,
            separators=(",", ":"),
        )
    )
    gather = ET.SubElement(
        root,
        "Gather",
        {
            "numDigits": "1",
            "action": gather_url(quote(token, safe="-._~")),
            "method": "POST",
            "timeout": str(config.gather_timeout_seconds),
            # "#" would otherwise end the input empty instead of counting as the key
            "finishOnKey": "",
            "actionOnEmptyResult": "false",
        },
    )
    _say(gather, prompt, language, voice)
    goodbye = _phrase(_GOODBYE, language)
    if goodbye:
        _say(root, goodbye, language, voice)
    ET.SubElement(root, "Hangup")
    return _document(root)


def _sealed_script(token: str, unseal: Callable[[str], str]) -> tuple[str, str, str, str | None]:
    try:
        data = json.loads(unseal(token))
        digit, script, language, voice = data["d"], data["s"], data["l"], data["v"]
        if not all(isinstance(v, str) for v in (digit, script, language)):
            raise TypeError("sealed fields are not strings")
        if voice is not None and not isinstance(voice, str):
            raise TypeError("sealed voice is not a string")
    except Exception:  # whatever fails to open (any error of any unseal) was not sealed by us
        raise ForgedReceipt("the gather token does not open") from None
    return digit, script, language, voice


def answer_gather(
    config: TwilioConfig, request: ReceiptRequest, unseal: Callable[[str], str]
) -> str:
    """The TwiML answering a call's keypad input (Twilio posts Digits to the Gather action):
    the sealed script when the callee pressed the key it was asked for, else a short notice
    and a hang-up. ForgedReceipt when the post is not Twilio's or the token is not ours."""
    form = dict(_signed_fields(config, request))
    token = request.query.get("t", "")
    if not token:
        raise ForgedReceipt("no gather token")
    digit, script, language, voice = _sealed_script(token, unseal)
    root = ET.Element("Response")
    if form.get("Digits", "") == digit:
        _say(root, script, language, voice)
    else:
        wrong = _phrase(_WRONG_KEY, language)
        if wrong:
            _say(root, wrong, language, voice)
    ET.SubElement(root, "Hangup")
    return _document(root)

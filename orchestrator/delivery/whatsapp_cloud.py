"""WhatsApp Cloud API: the provider's configuration, its template language, and its webhooks.

Pure code, shared by both processes: the worker builds its sender
(`workers/providers/whatsapp_cloud.py`) from `WhatsAppCloudConfig`; the web process hands the
requests Meta makes to `{public_url}/providers/{name}/status` to `read_receipts` (POST, status
webhooks signed with X-Hub-Signature-256) and `answer_challenge` (GET, the subscription
handshake an app owner triggers when registering the callback URL).

Errors: `ForgedReceipt` (signature or verify token missing or wrong: 403) and `BadReceipt`
(signed, but not a body Meta sends: 400), both from `orchestrator.delivery.receipts`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from orchestrator.delivery.receipts import (
    BadReceipt,
    ForgedReceipt,
    Receipt,
    ReceiptRequest,
    ReceiptStatus,
)

__all__ = [
    "SIGNATURE_HEADER",
    "WhatsAppCloudConfig",
    "answer_challenge",
    "read_receipts",
    "sign_body",
    "template_language",
]

SIGNATURE_HEADER = "x-hub-signature-256"

# Meta's status words for a message it accepted, folded to what the workflow acts on. "read" and
# "played" (a voice note) both mean the handset has it. Words not listed ("deleted", "warning",
# any Meta adds later) say nothing about delivery, so they produce no receipt.
_STATUSES: Mapping[str, ReceiptStatus] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "played": "delivered",
    "failed": "failed",
}

# WhatsApp's template language codes ("Supported languages" of the template docs). A template is
# approved per language, and the API matches the code exactly, so a locale has to become one of
# these, not a BCP 47 tag.
_REGIONAL_CODES = frozenset(
    {
        "en_GB", "en_US", "es_AR", "es_ES", "es_MX", "pt_BR", "pt_PT",
        "zh_CN", "zh_HK", "zh_TW", "rw_RW", "ky_KG",
    }
)  # fmt: skip
_LANGUAGE_CODES = frozenset(
    {
        "af", "sq", "ar", "az", "bn", "bg", "ca", "hr", "cs", "da", "nl", "en", "et", "fil",
        "fi", "fr", "ka", "de", "el", "gu", "ha", "he", "hi", "hu", "id", "ga", "it", "ja",
        "kn", "kk", "ko", "lo", "lv", "lt", "mk", "ms", "ml", "mr", "nb", "fa", "pl", "pa",
        "ro", "ru", "sr", "sk", "sl", "es", "sw", "sv", "ta", "te", "th", "tr", "uk", "ur",
        "uz", "vi", "zu",
    }
)  # fmt: skip
# Languages WhatsApp lists only with a region (or under another code than ISO 639-1's), and
# legacy codes the service's own locale names use (tl-ph is Filipino, ar-xa is pan-Arabic).
_LANGUAGE_RENAMES: Mapping[str, str] = {
    "tl": "fil",
    "iw": "he",
    "in": "id",
    "no": "nb",
    "pt": "pt_BR",
    "zh": "zh_CN",
    "rw": "rw_RW",
    "ky": "ky_KG",
}
FALLBACK_LANGUAGE = "en_US"


def template_language(locale: str) -> str:
    """WhatsApp's template language code for a verification's locale ("en-us", "de-de").

    The locale's own regional code when WhatsApp has one ("en-us" -> "en_US", "pt-pt" ->
    "pt_PT"); else the bare language ("de-de" -> "de", "es-us" -> "es", "ar-xa" -> "ar"), after
    the renames above ("tl-ph" -> "fil", "nb-no" -> "nb", a bare "pt" -> "pt_BR"); a language
    WhatsApp has no template code for gets "en_US". A template that isn't approved in the code
    chosen is refused by Meta (132001) and the message fails over; an operator whose template
    exists in one language only pins it with the provider's `language` key.
    """
    parts = locale.replace("_", "-").lower().split("-")
    language = parts[0]
    if len(parts) > 1:
        regional = f"{language}_{parts[1].upper()}"
        if regional in _REGIONAL_CODES:
            return regional
    language = _LANGUAGE_RENAMES.get(language, language)
    if language in _LANGUAGE_CODES or language in _REGIONAL_CODES:
        return language
    return FALLBACK_LANGUAGE


class WhatsAppCloudConfig(BaseModel):
    """`[providers.<name>]` with `kind = "whatsapp_cloud"`: one business phone number.

    `template` names an approved AUTHENTICATION template: body "{{1}} is your verification
    code" and an OTP button, which takes the code as a url-button parameter at index 0 whether
    it is copy-code, one-tap or zero-tap; `copy_code_button = false` is for a template without
    such a button (the body parameter only). `language` pins the template language; without
    it each message's locale picks one (`template_language`). `verify_token` is only needed to
    answer the GET handshake when the callback URL is registered with Meta.
    """

    # TOML may spell a numeric id without quotes; it is still an id, not a number
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    kind: Literal["whatsapp_cloud"]
    channels: list[str] = Field(default_factory=lambda: ["whatsapp"])
    phone_number_id: str = Field(pattern=r"^[0-9]{1,32}$")
    access_token: SecretStr = Field(min_length=1)
    app_secret: SecretStr = Field(min_length=1)
    verify_token: SecretStr | None = None
    template: str = Field(default="verify_code", pattern=r"^[a-z0-9_]{1,512}$")
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")
    copy_code_button: bool = True
    version: str = Field(default="v23.0", pattern=r"^v[0-9]+\.[0-9]+$")
    base_url: str = "https://graph.facebook.com"
    timeout_seconds: float = Field(default=10, gt=0)

    @field_validator("channels")
    @classmethod
    def _whatsapp_only(cls, channels: list[str]) -> list[str]:
        if not channels or any(c != "whatsapp" for c in channels):
            raise ValueError('the WhatsApp Cloud API carries only "whatsapp"')
        return channels


def sign_body(app_secret: str, body: bytes) -> str:
    """X-Hub-Signature-256 of a webhook body: "sha256=" + hex HMAC-SHA256 keyed by the app
    secret, over the exact bytes Meta sent (a re-serialized body would not match)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _check_signature(config: WhatsAppCloudConfig, request: ReceiptRequest) -> None:
    given = request.headers.get(SIGNATURE_HEADER, "").strip().lower()
    expected = sign_body(config.app_secret.get_secret_value(), request.body)
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ForgedReceipt("X-Hub-Signature-256 is missing or does not match the body")


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadReceipt(f"{where} is not a list")
    return value


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadReceipt(f"{where} is not an object")
    return value


def _error(status: dict[str, Any]) -> str | None:
    """ "<code> <title>" of the first error Meta gives for a failed message, e.g. "131047
    Re-engagement message"; its code is what an operator looks up."""
    errors = _list(status.get("errors"), "statuses[].errors")
    if not errors:
        return None
    first = _object(errors[0], "statuses[].errors[]")
    code, title = first.get("code"), first.get("title") or first.get("message")
    text = " ".join(str(part) for part in (code, title) if part not in (None, ""))
    return text[:200] or None


def _receipt(raw: object) -> Receipt | None:
    status = _object(raw, "statuses[]")
    message_id, word = status.get("id"), status.get("status")
    if not isinstance(message_id, str) or not message_id or not isinstance(word, str):
        raise BadReceipt("a status without its message id or status")
    folded = _STATUSES.get(word)
    if folded is None:
        return None
    error = _error(status) if folded == "failed" else None
    return Receipt(provider_id=message_id, status=folded, error=error, raw_status=word)


def read_receipts(config: WhatsAppCloudConfig, request: ReceiptRequest) -> list[Receipt]:
    """The message statuses of one signed webhook delivery, in Meta's order.

    Checks X-Hub-Signature-256 first (ForgedReceipt), then reads `entry[].changes[].value
    .statuses[]`. Inbound messages, other change fields (template reviews, account updates) and
    other webhook objects carry no status and give []. Signed but not Meta's shape: BadReceipt.
    Receipts are not filtered by metadata.phone_number_id: Meta posts every number of the app to
    one callback URL, and the message id (wamid) alone names the message.
    """
    _check_signature(config, request)
    try:
        payload = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadReceipt("the webhook body is not JSON") from None
    payload = _object(payload, "the webhook body")
    if payload.get("object") != "whatsapp_business_account":
        return []
    receipts: list[Receipt] = []
    for entry in _list(payload.get("entry"), "entry"):
        for change in _list(_object(entry, "entry[]").get("changes"), "entry[].changes"):
            value = _object(change, "entry[].changes[]").get("value")
            if value is None:
                continue
            statuses = _object(value, "entry[].changes[].value").get("statuses")
            for status in _list(statuses, "value.statuses"):
                receipt = _receipt(status)
                if receipt is not None:
                    receipts.append(receipt)
    return receipts


def answer_challenge(config: WhatsAppCloudConfig, query: Mapping[str, str]) -> str:
    """The body to answer Meta's GET handshake with: `hub.challenge`, once `hub.mode` is
    "subscribe" and `hub.verify_token` is the configured verify token.

    ForgedReceipt when no verify token is configured or the request doesn't carry it (someone
    probing the URL); BadReceipt when a request with the right token has no challenge.
    """
    expected = config.verify_token.get_secret_value() if config.verify_token else ""
    given = query.get("hub.verify_token", "")
    if (
        not expected
        or query.get("hub.mode") != "subscribe"
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        raise ForgedReceipt("not a subscription handshake with this provider's verify token")
    challenge = query.get("hub.challenge")
    if not challenge or len(challenge) > 256:
        raise BadReceipt("the handshake has no hub.challenge, or one Meta would not send")
    return challenge

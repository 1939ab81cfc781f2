"""Vonage: the provider's configuration, and the webhooks its SMS, Messages and Voice APIs send.

Pure code, shared by both processes: the worker builds its sender (`workers/providers/vonage.py`)
from `VonageConfig`; the web process hands what Vonage calls at `{public_url}/providers/{name}/…`
to `read_receipts` (`/status`: SMS API delivery receipts, Messages API status webhooks, Voice API
call events) and `answer_gather` (`/gather`: the keypad answer of a call's `input` action).

Vonage authenticates its callbacks two ways, both keyed by the account's signature secret:

- SMS API delivery receipts carry `sig`, a digest of the other parameters (sorted, `&k=v`) made
  with the dashboard's signature method: "md5hash" (MD5 of the string + secret, the default)
  or an HMAC (md5, sha1, sha256, sha512) keyed with the secret.
- Messages and Voice webhooks carry `Authorization: Bearer <JWT>`, HS256 with the secret, whose
  `payload_hash` claim is the SHA-256 hex digest of the body.

Receipts drive the workflow (a "failed" one fails the step over at once), so an unauthenticated
one is never believed: without `signature_secret` every receipt is a `ForgedReceipt` (403).
Errors: `ForgedReceipt` (signature missing or wrong) and `BadReceipt` (signed, but not a body
Vonage sends: 400), both from `orchestrator.delivery.receipts`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from orchestrator.delivery.receipts import (
    BadReceipt,
    ForgedReceipt,
    Receipt,
    ReceiptRequest,
    ReceiptStatus,
)

__all__ = [
    "SignatureMethod",
    "VonageConfig",
    "answer_gather",
    "read_receipts",
    "sms_signature",
]

SignatureMethod = Literal["md5hash", "md5", "sha1", "sha256", "sha512"]
_CHANNELS = ("sms", "whatsapp", "voice")

# SMS API delivery receipt `status` words. "unknown" means the carrier never said: not a failure
# worth failing over for, so it counts as handed over.
_SMS_STATUSES: Mapping[str, ReceiptStatus] = {
    "delivered": "delivered",
    "accepted": "sent",
    "buffered": "sent",
    "unknown": "sent",
    "expired": "failed",
    "failed": "failed",
    "rejected": "failed",
}
# Messages API status webhook words; "read" (WhatsApp) means the handset has it
_MESSAGE_STATUSES: Mapping[str, ReceiptStatus] = {
    "submitted": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "rejected": "failed",
    "undeliverable": "failed",
    "failed": "failed",
}
# Voice API call states: a call that was answered and ran its NCCO to the end read the code
# ("completed"); one that never connected did not. "machine", "human", input and transfer
# events say nothing about that, so they give no receipt.
_CALL_STATUSES: Mapping[str, ReceiptStatus] = {
    "started": "sent",
    "ringing": "sent",
    "answered": "sent",
    "completed": "delivered",
    "busy": "failed",
    "cancelled": "failed",
    "failed": "failed",
    "rejected": "failed",
    "timeout": "failed",
    "unanswered": "failed",
}


def _missing() -> PydanticCustomError:
    # the "missing" type makes the providers file say "missing <key> (in the file or VERIFY_…)"
    return PydanticCustomError("missing", "Field required")


class VonageConfig(BaseModel):
    """`[providers.<name>] kind = "vonage"`: which Vonage APIs carry which channel.

    SMS goes through the SMS API (api_key + api_secret) or, with `sms_api = "messages"`, the
    Messages API; WhatsApp always through the Messages API; voice through the Voice API. The
    Messages and Voice APIs authenticate with a JWT signed by the application's private key.
    Only what a listed channel needs is required, each named when it is missing.
    `signature_secret` is the account's (dashboard: API settings); the Voice API signs its
    callbacks only when the application's "signed webhooks" option is on, so turn it on.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["vonage"]
    channels: list[str] = Field(default_factory=lambda: list(_CHANNELS))
    sms_api: Literal["sms", "messages"] = "sms"
    api_key: str | None = Field(default=None, validate_default=True)
    api_secret: SecretStr | None = Field(default=None, validate_default=True)
    signature_secret: SecretStr | None = None
    signature_method: SignatureMethod = "md5hash"  # the dashboard's default
    application_id: str | None = Field(default=None, validate_default=True)
    # PEM text, or the path of a PEM file: read once, here, so a bad one stops the start
    private_key: SecretStr | None = Field(default=None, validate_default=True)
    whatsapp_from: str | None = Field(default=None, validate_default=True)
    # an approved WhatsApp authentication template: the code fills its body and its copy-code
    # button, in the template language the verification's locale maps to
    whatsapp_template: str = "verify_code"
    whatsapp_language: str | None = None  # pins the template language (else from the locale)
    whatsapp_copy_code_button: bool = True  # the template has Meta's copy-code (URL) button
    voice_from: str | None = Field(default=None, validate_default=True)
    voice_premium: bool = False
    base_url: str = "https://api.nexmo.com"
    rest_base_url: str = "https://rest.nexmo.com"
    timeout_seconds: float = Field(default=10, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _one_peer(cls, data: Any) -> Any:
        # a test (or a proxy) pointing base_url somewhere means the SMS API too, unless told
        if isinstance(data, dict) and "base_url" in data and "rest_base_url" not in data:
            data = {**data, "rest_base_url": data["base_url"]}
        return data

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, channels: list[str]) -> list[str]:
        for channel in channels:
            if channel not in _CHANNELS:
                raise ValueError(f"vonage carries {', '.join(_CHANNELS)}, not {channel!r}")
        return channels

    @field_validator("api_key", "api_secret")
    @classmethod
    def _sms_api_keys(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and "sms" in info.data.get("channels", ()):
            if info.data.get("sms_api") == "sms":
                raise _missing()
        return value

    @field_validator("application_id", "private_key")
    @classmethod
    def _application(cls, value: Any, info: ValidationInfo) -> Any:
        channels = info.data.get("channels", ())
        needs = "whatsapp" in channels or "voice" in channels
        needs = needs or ("sms" in channels and info.data.get("sms_api") == "messages")
        if value is None and needs:
            raise _missing()
        if info.field_name == "private_key" and value is not None:
            return SecretStr(_read_private_key(value.get_secret_value()))
        return value

    @field_validator("whatsapp_from", "voice_from")
    @classmethod
    def _numbers(cls, value: str | None, info: ValidationInfo) -> str | None:
        channel = "whatsapp" if info.field_name == "whatsapp_from" else "voice"
        if value is None:
            if channel in info.data.get("channels", ()):
                raise _missing()
            return None
        digits = value.removeprefix("+")
        if not digits.isdigit() or not 7 <= len(digits) <= 15:
            raise ValueError("must be an E.164 number")
        return digits  # the Messages and Voice APIs want no "+"

    @property
    def jwt_key(self) -> str:
        """The application's private key as PEM text (what signs the Messages/Voice JWT)."""
        if self.private_key is None:
            raise RuntimeError("no private_key configured")
        return self.private_key.get_secret_value()


def _read_private_key(value: str) -> str:
    """PEM text as given, or the file it names; ValueError (without the key) if neither loads."""
    text = value.strip()
    if "-----BEGIN" not in text:
        try:
            text = Path(text).expanduser().read_text()
        except (OSError, ValueError):
            raise ValueError("is neither PEM text nor a readable PEM file") from None
    elif "\n" not in text:
        # an environment variable often carries the PEM's newlines escaped
        text = text.replace("\\n", "\n")
    try:
        load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("is not an unencrypted PEM private key") from None
    return text


def sms_signature(params: Mapping[str, str], secret: str, method: SignatureMethod) -> str:
    """Vonage's `sig` over `params` (without `sig`): each as `&key=value`, keys sorted, `&` and `=`
    in values replaced by `_`; hex, lower case (Vonage sends HMACs upper case: compare folded)."""
    signed = "".join(
        f"&{key}={value.replace('&', '_').replace('=', '_')}"
        for key, value in sorted(params.items())
        if key != "sig"
    ).encode()
    if method == "md5hash":
        return hashlib.md5(signed + secret.encode(), usedforsecurity=False).hexdigest()
    return hmac.new(secret.encode(), signed, method).hexdigest()


def _secret(config: VonageConfig) -> str:
    if config.signature_secret is None:
        raise ForgedReceipt("vonage: no signature_secret configured, so no receipt is trusted")
    return config.signature_secret.get_secret_value()


def _verify_jwt(config: VonageConfig, request: ReceiptRequest) -> None:
    """The Bearer JWT of a Messages/Voice webhook: HS256 with the signature secret, its
    `payload_hash` the body's SHA-256. ForgedReceipt when anything is off."""
    secret = _secret(config)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ForgedReceipt("vonage: no signed JWT")
    try:
        with warnings.catch_warnings():
            # the secret's length is Vonage's choice, not ours: PyJWT's short-key warning
            # (below 32 bytes for HS256) would only repeat on every webhook
            warnings.filterwarnings("ignore", message="The HMAC key is", category=UserWarning)
            # pinned: a token may not choose its algorithm ("none", or RS256 keyed by the secret)
            claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["iat"]})
    except jwt.PyJWTError:
        raise ForgedReceipt("vonage: JWT signature invalid") from None
    digest = hashlib.sha256(request.body).hexdigest()
    claimed = claims.get("payload_hash")
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed.lower(), digest):
        raise ForgedReceipt("vonage: payload_hash does not match the body")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadReceipt("vonage: body is not JSON") from None
    if not isinstance(data, dict):
        raise BadReceipt("vonage: body is not a JSON object")
    return data


def _dlr_params(request: ReceiptRequest) -> dict[str, str]:
    """An SMS DLR's parameters: GET query, or a POST form or JSON body (a dashboard choice)."""
    if request.method.upper() == "GET" or not request.body:
        return dict(request.query)
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/json":
        data = _json_object(request.body)
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    try:
        return dict(parse_qsl(request.body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        raise BadReceipt("vonage: form body is not UTF-8") from None


def _sms_receipts(config: VonageConfig, request: ReceiptRequest) -> list[Receipt]:
    secret = _secret(config)
    params = _dlr_params(request)
    sig = params.get("sig", "")
    if not sig:
        raise ForgedReceipt("vonage: delivery receipt without sig")
    expected = sms_signature(params, secret, config.signature_method)
    if not hmac.compare_digest(sig.lower(), expected):
        raise ForgedReceipt("vonage: delivery receipt sig does not match")
    message_id, word = params.get("messageId"), params.get("status")
    if not message_id and not word:
        return []  # signed, but not a receipt (an inbound SMS)
    if not message_id or not word:
        raise BadReceipt("vonage: delivery receipt without messageId or status")
    status = _SMS_STATUSES.get(word)
    if status is None:
        return []
    err = params.get("err-code")
    error = err if err and err != "0" else None
    return [Receipt(message_id, status, error=error, raw_status=word)]


def _message_receipts(event: dict[str, Any]) -> list[Receipt]:
    uuid, word = event.get("message_uuid"), event.get("status")
    if word is None:
        return []  # an inbound message, not a status
    if not isinstance(uuid, str) or not uuid or not isinstance(word, str):
        raise BadReceipt("vonage: status webhook without message_uuid or status")
    status = _MESSAGE_STATUSES.get(word)
    if status is None:
        return []
    error: str | None = None
    if status == "failed" and isinstance(event.get("error"), dict):
        err = event["error"]
        # v1 puts the code in `title`; the 2021 (v0.1) webhook had `code` and `reason`
        found = err.get("title", err.get("code", err.get("reason")))
        error = str(found)[:100] if found is not None else None
    return [Receipt(uuid, status, error=error, raw_status=word)]


def _call_receipts(event: dict[str, Any]) -> list[Receipt]:
    uuid, word = event.get("uuid"), event.get("status")
    if not isinstance(word, str):
        return []  # input, transfer, record, … events
    if not isinstance(uuid, str) or not uuid:
        raise BadReceipt("vonage: call event without uuid")
    status = _CALL_STATUSES.get(word)
    if status is None:
        return []
    detail = event.get("detail")
    error = (str(detail)[:100] if detail else word) if status == "failed" else None
    return [Receipt(uuid, status, error=error, raw_status=word)]


def read_receipts(config: VonageConfig, request: ReceiptRequest) -> list[Receipt]:
    """The receipts in one Vonage callback to `/providers/{name}/status`.

    A request with `Authorization: Bearer` is a Messages API status or a Voice API event (the
    JWT checked, then the JSON read); any other is an SMS API delivery receipt (its `sig`
    checked). Without `signature_secret` all are ForgedReceipt: an unauthenticated receipt
    could fail a verification over, so none is believed.
    """
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        _verify_jwt(config, request)
        event = _json_object(request.body)
        if "message_uuid" in event:
            return _message_receipts(event)
        if "uuid" in event:
            return _call_receipts(event)
        return []
    return _sms_receipts(config, request)


def _ncco_talk(text: str, language: str) -> str:
    return json.dumps([{"action": "talk", "text": text, "language": language}])


def answer_gather(
    config: VonageConfig, request: ReceiptRequest, unseal: Callable[[str], str]
) -> str:
    """The NCCO (JSON text) answering a call's `input` result posted to its eventUrl.

    The eventUrl carries `t`, the sealed {"d": key, "s": script, "l": TTS language} the worker
    put there; the script (which holds the code) is read only when the callee pressed that key.
    The JWT is checked as for receipts, and a token that does not unseal is as forged.
    """
    _verify_jwt(config, request)
    try:
        sealed = json.loads(unseal(request.query["t"]))
        digit, script, language = str(sealed["d"]), str(sealed["s"]), str(sealed["l"])
    except Exception:  # whatever fails to open (any exception) was not sealed by us
        raise ForgedReceipt("vonage: gather token does not unseal") from None
    event = _json_object(request.body)
    dtmf = event.get("dtmf")
    # the Voice API's input result: {"dtmf": {"digits": "1", "timed_out": false}}; the older
    # NCCO reference posted the digits as a plain string
    digits = dtmf.get("digits") if isinstance(dtmf, dict) else dtmf
    if digits is not None and not isinstance(digits, str):
        raise BadReceipt("vonage: input event with non-text digits")
    if digits == digit:
        return _ncco_talk(script, language)
    return _ncco_talk("Wrong key. Goodbye.", "en-US")

"""Webhook signatures, as pure functions over the exact bytes sent.

Every callback carries two independent proofs: its dialect's own (Vonage: an `Authorization:
Bearer` HS256 JWT with `payload_hash`, the hex SHA-256 of the body; Twilio: `X-Twilio-Signature`)
and the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence

__all__ = [
    "standard_webhook_headers",
    "standard_webhook_signature",
    "twilio_signature",
    "vonage_authorization",
]


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


# the header segment PyJWT writes for HS256 (sorted keys, compact separators), encoded once
_HS256_HEADER = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())


def vonage_authorization(
    body: bytes, *, secret: str, api_key: str, application_id: str, now: int
) -> str:
    """`Bearer <HS256 JWT>`, the same bytes `jwt.encode(claims, secret, algorithm="HS256")` gives,
    signed with hmac directly (PyJWT's generic encoder cost more than the rest of a delivery)."""
    claims = {
        "iat": now,
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": api_key,
        "application_id": application_id,
    }
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = _HS256_HEADER + b"." + payload
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return "Bearer " + (signing_input + b"." + _b64url(signature)).decode()


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str | Sequence[str]]) -> str:
    """`X-Twilio-Signature`: base64 HMAC-SHA1, keyed by the account's auth token, of the URL
    followed by each parameter name (sorted) and its values (sorted, de-duplicated), exactly as
    twilio's `RequestValidator.compute_signature` rebuilds it."""
    signed = url
    for name in sorted(params):
        value = params[name]
        values = [value] if isinstance(value, str) else sorted(set(value))
        for item in values:
            signed += name + item
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@functools.lru_cache(maxsize=1024)
def _standard_webhook_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def standard_webhook_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = _standard_webhook_key(secret)
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_webhook_headers(
    secret: str, message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_webhook_signature(secret, message_id, timestamp, body),
    }

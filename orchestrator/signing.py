"""Webhook signatures, as pure functions over the exact bytes sent.

Every callback carries two independent proofs: its dialect's own (Vonage: an `Authorization:
Bearer` HS256 JWT with `payload_hash`, the hex SHA-256 of the body; Twilio: `X-Twilio-Signature`)
and the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Mapping, Sequence

import jwt

__all__ = [
    "standard_webhook_headers",
    "standard_webhook_signature",
    "twilio_signature",
    "vonage_authorization",
]


def vonage_authorization(
    body: bytes, *, secret: str, api_key: str, application_id: str, now: int
) -> str:
    claims = {
        "iat": now,
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": api_key,
        "application_id": application_id,
    }
    return "Bearer " + jwt.encode(claims, secret, algorithm="HS256")


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


def standard_webhook_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
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

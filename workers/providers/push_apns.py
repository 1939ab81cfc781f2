"""APNs provider API over HTTP/2 with token (ES256 JWT) authentication.

Apple accepts HTTP/2 only, which aiohttp does not speak, so this one module uses httpx with
h2 (`pip install 'verify-orchestrator[apns]'`), imported lazily. The request itself (path,
headers, payload) and the provider token are built by pure functions below.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from orchestrator.settings import Settings
from workers.providers.push_base import (
    PushDeliveryError,
    PushMessage,
    PushProvider,
    parse_retry_after,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "TOKEN_MAX_AGE",
    "ApnsKey",
    "ApnsProvider",
    "apns_id",
    "apns_request",
    "classify_error",
    "provider_token",
]

# Apple refuses tokens older than an hour and refreshes more often than every 20 minutes
TOKEN_MAX_AGE = 50 * 60
_APNS_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:verify-orchestrator:apns-id")
_EXTRA = "pip install 'verify-orchestrator[apns]'"


@dataclass(frozen=True, slots=True)
class ApnsKey:
    """A token-signing key from the Apple developer account (the .p8 file) and its ids."""

    key_id: str
    team_id: str
    private_key: str = field(repr=False)  # PEM, PKCS#8, P-256

    @classmethod
    def load(cls, path: Path, key_id: str, team_id: str) -> ApnsKey:
        pem = path.read_text(encoding="ascii")
        key = load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("the APNs key file must hold a P-256 (ES256) private key")
        return cls(key_id=key_id, team_id=team_id, private_key=pem)


def provider_token(key: ApnsKey, now: int) -> str:
    """The provider authentication token: {alg: ES256, kid} . {iss: team id, iat}."""
    # Apple documents a header of exactly alg and kid, so leave out PyJWT's default "typ"
    headers: dict[str, Any] = {"kid": key.key_id, "typ": None}
    return jwt.encode(
        {"iss": key.team_id, "iat": now}, key.private_key, algorithm="ES256", headers=headers
    )


def apns_id(message_id: str) -> str:
    """The same apns-id for every retry of one message, in the canonical lowercase form."""
    return str(uuid.uuid5(_APNS_ID_NAMESPACE, message_id))


def apns_request(message: PushMessage, topic: str, now: int) -> tuple[str, dict[str, str], bytes]:
    """Path, headers (less authorization) and JSON payload for one notification."""
    payload: dict[str, Any] = {
        "aps": {"alert": {"title": message.title, "body": message.body}, "sound": "default"}
    }
    payload.update({k: v for k, v in message.data.items() if k != "aps"})
    headers = {
        "apns-topic": topic,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-expiration": str(now + max(0, message.ttl)),
        "apns-id": apns_id(message.id),
        # a re-sent notification for one challenge replaces the earlier one on the device
        "apns-collapse-id": message.challenge_sid[:64],
        "content-type": "application/json",
    }
    path = f"/3/device/{message.notification_token}"
    return path, headers, json.dumps(payload, separators=(",", ":")).encode()


def classify_error(status: int, text: str, retry_after: str | None = None) -> PushDeliveryError:
    """Map an APNs error response ({"reason": ...}) to our error."""
    try:
        reason = json.loads(text).get("reason")
    except (ValueError, AttributeError):
        reason = None
    reason = reason if isinstance(reason, str) else None
    # 400 (BadDeviceToken, ...), 404/405 (a bad request line), 410 (Unregistered) and 413 are
    # properties of the request or the token; 403 (keys), 429 and 5xx may pass later
    permanent = status in (400, 404, 405, 410, 413)
    return PushDeliveryError(
        f"APNs refused the message: HTTP {status} {reason or ''}".rstrip(),
        permanent=permanent,
        status=status,
        reason=reason,
        retry_after=parse_retry_after(retry_after),
    )


class ApnsProvider(PushProvider):
    name = "apns"

    def __init__(
        self,
        key: ApnsKey,
        topic: str,
        *,
        base_url: str = "https://api.push.apple.com",
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._topic = topic
        self._base_url = base_url.rstrip("/")
        self._owns_client = client is None
        self._client = client if client is not None else _http2_client(timeout)
        self._clock = clock
        self._token: str | None = None
        self._token_issued = 0.0
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ApnsProvider:
        s = settings
        if not (s.apns_key_file and s.apns_key_id and s.apns_team_id and s.apns_topic):
            raise ValueError(
                "the apns push provider needs apns_key_file, apns_key_id, apns_team_id"
                " and apns_topic"
            )
        key = ApnsKey.load(s.resolve_path(s.apns_key_file), s.apns_key_id, s.apns_team_id)
        return cls(key, s.apns_topic, base_url=s.apns_base_url)

    async def send(self, message: PushMessage) -> None:
        if message.notification_platform == "none":
            return
        if message.notification_platform != "apn" or not message.notification_token:
            raise PushDeliveryError(
                f"the apns provider cannot reach a {message.notification_platform!r} device",
                permanent=True,
                reason="WRONG_PLATFORM",
            )
        path, headers, body = apns_request(message, self._topic, int(self._clock()))
        for attempt in range(2):
            token = await self._provider_token()
            response = await self._post(path, {**headers, "authorization": f"bearer {token}"}, body)
            if response.status_code == 200:
                return
            error = classify_error(
                response.status_code, response.text, response.headers.get("retry-after")
            )
            if error.reason == "ExpiredProviderToken" and attempt == 0:
                self._forget(token)
                continue
            raise error

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _provider_token(self) -> str:
        async with self._token_lock:
            now = self._clock()
            if self._token is None or now - self._token_issued >= TOKEN_MAX_AGE:
                self._token = provider_token(self._key, int(now))
                self._token_issued = now
            return self._token

    def _forget(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def _post(self, path: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        import httpx

        try:
            return await self._client.post(self._base_url + path, headers=headers, content=body)
        except httpx.HTTPError as exc:
            raise PushDeliveryError(
                f"APNs could not be reached: {type(exc).__name__}", permanent=False
            ) from exc


def _http2_client(timeout: float) -> httpx.AsyncClient:
    """An HTTP/2-only client: over TLS ALPN picks h2, over plain http it speaks h2 directly."""
    try:
        import httpx

        return httpx.AsyncClient(http1=False, http2=True, timeout=timeout)
    except ImportError as exc:  # httpx itself, or h2 which http2=True needs
        raise ImportError(f"the apns push provider needs httpx with HTTP/2: {_EXTRA}") from exc

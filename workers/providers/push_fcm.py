"""FCM HTTP v1: messages:send with an OAuth2 token from a Google service-account key.

The pure half (service account, JWT assertion, message body, error mapping) does no I/O;
`FcmProvider` is the only part that talks to the network, over one aiohttp session.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from orchestrator.settings import Settings
from workers.providers.push_base import (
    PushDeliveryError,
    PushMessage,
    PushProvider,
    parse_retry_after,
)

__all__ = [
    "FCM_SCOPE",
    "JWT_BEARER_GRANT",
    "FcmProvider",
    "ServiceAccount",
    "classify_error",
    "message_body",
    "token_assertion",
]

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a public URL
ASSERTION_LIFETIME = 3600  # Google accepts at most one hour between iat and exp
TOKEN_REFRESH_MARGIN = 300  # fetch a new access token this long before the old one expires


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """The parts of a Google service-account JSON key that the token exchange needs."""

    client_email: str
    private_key: str = field(repr=False)  # PEM, PKCS#8 RSA
    private_key_id: str | None = None
    token_uri: str = GOOGLE_TOKEN_URI
    project_id: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ServiceAccount:
        if raw.get("type", "service_account") != "service_account":
            raise ValueError("the FCM key file is not a service-account key")
        email, key = raw.get("client_email"), raw.get("private_key")
        if not isinstance(email, str) or not isinstance(key, str):
            raise ValueError("the FCM key file lacks client_email or private_key")
        return cls(
            client_email=email,
            private_key=key,
            private_key_id=raw.get("private_key_id") or None,
            token_uri=raw.get("token_uri") or GOOGLE_TOKEN_URI,
            project_id=raw.get("project_id") or None,
        )

    @classmethod
    def load(cls, path: Path) -> ServiceAccount:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))


def token_assertion(account: ServiceAccount, now: int) -> str:
    """The RS256 JWT that Google's token endpoint swaps for an access token."""
    claims = {
        "iss": account.client_email,
        "scope": FCM_SCOPE,
        "aud": account.token_uri,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    }
    headers = {"kid": account.private_key_id} if account.private_key_id else None
    return jwt.encode(claims, account.private_key, algorithm="RS256", headers=headers)


def message_body(message: PushMessage, now: int) -> dict[str, Any]:
    """The messages:send request body for one challenge notification."""
    ttl = max(0, message.ttl)
    return {
        "message": {
            "token": message.notification_token,
            "notification": {"title": message.title, "body": message.body},
            "data": dict(message.data),
            "android": {"priority": "HIGH", "ttl": f"{ttl}s"},
            # FCM relays to APNs for iOS apps: same urgency, same lifetime, and a retried
            # notification for one challenge replaces the earlier one on the lock screen
            "apns": {
                "headers": {
                    "apns-priority": "10",
                    "apns-push-type": "alert",
                    "apns-expiration": str(now + ttl),
                    "apns-collapse-id": message.challenge_sid[:64],
                },
                "payload": {"aps": {"sound": "default"}},
            },
        }
    }


def classify_error(status: int, text: str, retry_after: str | None = None) -> PushDeliveryError:
    """Map an FCM error response (google.rpc.Status with an FcmError detail) to our error."""
    code = _error_code(text)
    # 404 UNREGISTERED, 400 INVALID_ARGUMENT and 403 SENDER_ID_MISMATCH: this token, this payload
    # or this project will never work; 401, 429 and 5xx may pass on a later try
    permanent = status in (400, 404) or (status == 403 and code == "SENDER_ID_MISMATCH")
    return PushDeliveryError(
        f"FCM refused the message: HTTP {status} {code or ''}".rstrip(),
        permanent=permanent,
        status=status,
        reason=code,
        retry_after=parse_retry_after(retry_after),
    )


def _error_code(text: str) -> str | None:
    """FcmError.errorCode when present (UNREGISTERED, ...), else the google.rpc status name."""
    try:
        error = json.loads(text).get("error", {})
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and isinstance(detail.get("errorCode"), str):
            return str(detail["errorCode"])
    status = error.get("status")
    return status if isinstance(status, str) else None


class FcmProvider(PushProvider):
    name = "fcm"

    def __init__(
        self,
        account: ServiceAccount,
        *,
        project_id: str | None = None,
        base_url: str = "https://fcm.googleapis.com",
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        project = project_id or account.project_id
        if not project:
            raise ValueError("FCM needs a project id: set fcm_project_id")
        self._account = account
        self._send_url = f"{base_url.rstrip('/')}/v1/projects/{project}/messages:send"
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, session: aiohttp.ClientSession | None = None
    ) -> FcmProvider:
        if settings.fcm_service_account_file is None:
            raise ValueError("the fcm push provider needs fcm_service_account_file")
        account = ServiceAccount.load(settings.resolve_path(settings.fcm_service_account_file))
        return cls(
            account,
            project_id=settings.fcm_project_id,
            base_url=settings.fcm_base_url,
            session=session,
        )

    async def send(self, message: PushMessage) -> None:
        if message.notification_platform == "none":
            return
        if message.notification_platform != "fcm" or not message.notification_token:
            raise PushDeliveryError(
                f"the fcm provider cannot reach a {message.notification_platform!r} device",
                permanent=True,
                reason="WRONG_PLATFORM",
            )
        body = message_body(message, int(self._clock()))
        for attempt in range(2):
            token = await self._access_token()
            status, text, retry_after = await self._post(
                self._send_url, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            if 200 <= status < 300:
                return
            if status == 401 and attempt == 0 and _error_code(text) != "THIRD_PARTY_AUTH_ERROR":
                self._forget(token)  # revoked or expired early: one more try with a fresh one
                continue
            raise classify_error(status, text, retry_after)

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _access_token(self) -> str:
        """The cached access token, exchanged anew shortly before it expires."""
        async with self._token_lock:
            if self._token is not None and self._clock() < self._token_expires:
                return self._token
            now = self._clock()
            form = {
                "grant_type": JWT_BEARER_GRANT,
                "assertion": token_assertion(self._account, int(now)),
            }
            status, text, retry_after = await self._post(self._account.token_uri, data=form)
            try:
                answer = json.loads(text) if status == 200 else {}
                token = answer["access_token"]
                lifetime = float(answer.get("expires_in", 3600))
            except (ValueError, KeyError, TypeError, AttributeError):
                token = None
            if not isinstance(token, str) or not token:
                raise PushDeliveryError(
                    f"the OAuth2 token exchange for FCM failed: HTTP {status}",
                    permanent=False,  # a key or clock to fix, not a property of the message
                    status=status,
                    reason="TOKEN_EXCHANGE",
                    retry_after=parse_retry_after(retry_after),
                )
            self._token = token
            self._token_expires = now + max(0.0, lifetime - TOKEN_REFRESH_MARGIN)
            return token

    def _forget(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def _post(self, url: str, **kwargs: Any) -> tuple[int, str, str | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(url, timeout=self._timeout, **kwargs) as response:
                text = await response.text()
                return response.status, text, response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PushDeliveryError(
                f"FCM could not be reached: {type(exc).__name__}", permanent=False
            ) from exc

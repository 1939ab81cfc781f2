"""Who is calling: RS256 JWTs signed with an application's key, or Basic api_key:api_secret."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from jwt.algorithms import RSAAlgorithm
from jwt.utils import base64url_decode
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.tenants.accounts import resolve_basic
from orchestrator.tenants.apps import Application, get_app_by_api_key_cached, get_app_cached

__all__ = ["AuthError", "Principal", "authenticate", "authenticate_account", "basic_credentials"]

MAX_JWT_LIFETIME = 24 * 3600
DEFAULT_JWT_LIFETIME = 15 * 60


class AuthError(Exception):
    """Credentials missing or refused; `detail` is safe to show the caller."""

    def __init__(
        self, detail: str = "You did not provide correct credentials", expired: bool = False
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.expired = expired


@dataclass(frozen=True)
class Principal:
    app: Application
    method: Literal["jwt", "basic"]


async def authenticate(redis: Redis, header: str | None, leeway: int) -> Principal:
    if not header:
        raise AuthError()
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and value:
        return Principal(await _jwt(redis, value, leeway), "jwt")
    if scheme == "basic" and value:
        return Principal(await _basic(redis, value), "basic")
    raise AuthError()


def basic_credentials(header: str | None) -> tuple[str, str]:
    """The user and password of a Basic header; AuthError when there is none."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise AuthError()
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError() from None
    user, sep, password = decoded.partition(":")
    if not sep or not user or len(user) > 64:
        raise AuthError()
    return user, password


async def authenticate_account(redis: Redis, header: str | None, leeway: int) -> str:
    """The account behind any credential either dialect accepts (AC/SK Basic, app Basic or JWT)."""
    scheme = (header or "").partition(" ")[0].lower()
    if scheme == "basic":
        user, password = basic_credentials(header)
        if user.startswith(("AC", "SK")):
            account = await resolve_basic(redis, user, password)
            if account is None:
                raise AuthError()
            return account.sid
    principal = await authenticate(redis, header, leeway)
    return principal.app.account


async def _basic(redis: Redis, value: str) -> Application:
    api_key, api_secret = basic_credentials("Basic " + value)
    app = await get_app_by_api_key_cached(redis, api_key)
    if app is None or not app.check_api_secret(api_secret):
        raise AuthError()
    return app


# loaded public keys by (application id, SHA-256 of its PEM): a changed key is a new entry
_RS256 = RSAAlgorithm(RSAAlgorithm.SHA256)
_KEYS: dict[tuple[str, bytes], RSAPublicKey] = {}
_KEYS_MAX = 4096


def _public_key(app: Application) -> RSAPublicKey:
    """The application's key, parsed once per PEM; raises jwt.InvalidKeyError on a bad PEM."""
    pem = app.public_key_pem.encode()
    cache_key = (app.id, hashlib.sha256(pem).digest())
    key = _KEYS.get(cache_key)
    if key is None:
        loaded = _RS256.prepare_key(pem)
        key = loaded.public_key() if isinstance(loaded, RSAPrivateKey) else loaded
        if len(_KEYS) >= _KEYS_MAX:
            _KEYS.clear()
        _KEYS[cache_key] = key
    return key


def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, read once and only to pick the key; PyJWT verifies the token after.

    Nothing here is trusted: the claims used afterwards are those PyJWT returns from the
    verified decode, which must name the same application.
    """
    try:
        header_b64, payload_b64, _ = token.split(".")
        header = json.loads(base64url_decode(header_b64))
        claims = json.loads(base64url_decode(payload_b64))
    # JSONDecodeError and UnicodeDecodeError are ValueErrors; deep nesting is a RecursionError
    except (ValueError, TypeError, binascii.Error, RecursionError):
        raise AuthError() from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthError()
    return header, claims


async def _jwt(redis: Redis, token: str, leeway: int) -> Application:
    header, claims = _unverified_parts(token)
    # the algorithm is pinned: never let the token choose (no "none", no HS256 with a public key)
    if header.get("alg") != "RS256":
        raise AuthError()
    app_id = claims.get("application_id")
    if not isinstance(app_id, str) or not app_id or len(app_id) > 64:
        raise AuthError()
    app = await get_app_cached(redis, app_id)
    if app is None:
        raise AuthError()
    try:
        claims = jwt.decode(
            token,
            _public_key(app),
            algorithms=["RS256"],
            leeway=leeway,
            options={"require": ["iat", "jti"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("The JWT provided has expired.", expired=True) from None
    except jwt.PyJWTError:
        raise AuthError() from None
    if claims.get("application_id") != app.id:
        raise AuthError()
    now = time.time()
    iat = claims["iat"]
    if not isinstance(iat, int | float) or iat > now + leeway:
        raise AuthError()
    exp = claims.get("exp", iat + DEFAULT_JWT_LIFETIME)
    if not isinstance(exp, int | float) or exp - iat > MAX_JWT_LIFETIME:
        raise AuthError()
    if exp + leeway < now:
        raise AuthError("The JWT provided has expired.", expired=True)
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > 128:
        raise AuthError()
    # each jti is accepted once, for as long as the token could still be valid
    ttl = max(int(exp + leeway - now) + 1, 1)
    fresh = await redis.set(f"{constants.JTI_PREFIX}{app.id}:{jti}", b"1", ex=ttl, nx=True)
    if not fresh:
        raise AuthError()
    return app

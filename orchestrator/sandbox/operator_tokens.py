"""The sandbox CAMARA operator's authorization server: scopes, grants, tokens, client auth.

An operator's OIDC server hands out three kinds of single-use secrets, all kept in Redis with a
TTL of at most 300 s (CAMARA's limit for Number Verification tokens, and the CIBA/code lifetimes
operators use):

- authorization codes (front channel, `/oauth2/auth`), bound to the client, the redirect URI, the
  PKCE challenge and the line the network recognised;
- CIBA `auth_req_id`s (`/oauth2/bc-authorize`), bound to the client and the `login_hint` line;
- access tokens (`/oauth2/token`), stored by their SHA-256 only, so a Redis dump holds no usable
  token. A token that grants a Number Verification scope is spent by its first API answer.

Clients authenticate as the Vonage dialect's applications do, with their own RS256 key: either
`Authorization: Bearer <application JWT>` (what the Vonage Network SDKs send; verified by
`security.auth`, jti single use) or RFC 7523 `private_key_jwt` (`client_assertion`), the method
the CAMARA security profile makes mandatory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.security import auth
from orchestrator.tenants.apps import Application, get_app_cached

__all__ = [
    "ASSERTION_TYPE",
    "CIBA_GRANT",
    "Grant",
    "OAuthError",
    "authenticate_client",
    "consume_token",
    "grant_scope",
    "id_token",
    "issue_token",
    "jwks",
    "parse_login_hint",
    "peek_token",
    "pkce_matches",
    "save_auth_req",
    "save_code",
    "take_auth_req",
    "take_code",
]

# Redis key prefixes (defined, with their shapes, in orchestrator/constants.py)
CAMARA_CODE_PREFIX = constants.CAMARA_CODE_PREFIX
CAMARA_CIBA_PREFIX = constants.CAMARA_CIBA_PREFIX
CAMARA_TOKEN_PREFIX = constants.CAMARA_TOKEN_PREFIX
CAMARA_ASSERTION_JTI_PREFIX = constants.CAMARA_ASSERTION_JTI_PREFIX
# the operator's RS256 id_token key (PEM), made once per deployment like the server key
CAMARA_SIGNING_KEY = constants.CAMARA_SIGNING_KEY

CODE_TTL = 300
CIBA_TTL = 300
CIBA_INTERVAL = 2
TOKEN_TTL = 300
# RFC 7523 assertions: CAMARA's security profile caps their lifetime at 300 s
MAX_ASSERTION_LIFETIME = 300

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CIBA_GRANT = "urn:openid:params:grant-type:ciba"

# what a token may do, in CAMARA's technical scope names
NV_VERIFY = "number-verification:verify"
NV_SHARE = "number-verification:device-phone-number:read"
SS_CHECK = "sim-swap:check"
SS_DATE = "sim-swap:retrieve-date"
NV_PERMISSIONS = frozenset({NV_VERIFY, NV_SHARE})
SS_PERMISSIONS = frozenset({SS_CHECK, SS_DATE})

# accepted scope values: CAMARA's technical scopes and the `dpv:` purpose scopes Vonage's SDKs
# (and Telefonica's Open Gateway) send; `openid` is allowed and grants nothing by itself
DPV = "dpv:FraudPreventionAndDetection#"
SCOPES: dict[str, frozenset[str]] = {
    "openid": frozenset(),
    DPV + "number-verification-verify-read": frozenset({NV_VERIFY}),
    DPV + "number-verification-share-read": frozenset({NV_SHARE}),
    DPV + "check-sim-swap": frozenset({SS_CHECK}),
    DPV + "retrieve-sim-swap-date": frozenset({SS_DATE}),
    NV_VERIFY: frozenset({NV_VERIFY}),
    NV_SHARE: frozenset({NV_SHARE}),
    SS_CHECK: frozenset({SS_CHECK}),
    SS_DATE: frozenset({SS_DATE}),
    "sim-swap": SS_PERMISSIONS,
}

_E164 = re.compile(r"^\+[1-9][0-9]{4,14}$")
# RFC 7636 §4.1/§4.2: verifier and (base64url SHA-256) challenge alphabets
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")
_OPAQUE = re.compile(r"^[A-Za-z0-9\-_]{16,128}$")


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: `{error, error_description}`; the description is safe to show."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def grant_scope(scope: str | None) -> tuple[frozenset[str], str]:
    """The permissions a space-separated `scope` asks for, and the scope echoed to the client.

    An unknown value is `invalid_scope` (RFC 6749 §3.3): an operator never grants what it does
    not know, and silently dropping it would hide a client's typo."""
    values = (scope or "").split()
    if not values:
        raise OAuthError("invalid_scope", "scope is required")
    permissions: set[str] = set()
    for value in values:
        granted = SCOPES.get(value)
        if granted is None:
            raise OAuthError("invalid_scope", "scope has a value this operator does not offer")
        permissions |= granted
    if not permissions:
        raise OAuthError("invalid_scope", "scope names no API of this operator")
    return frozenset(permissions), " ".join(dict.fromkeys(values))


def parse_login_hint(hint: str) -> str:
    """E.164 digits of `tel:+<E.164>` or `+<E.164>` (CAMARA's and the Vonage SDKs' forms)."""
    number = hint[4:] if hint.startswith("tel:") else hint
    if not _E164.match(number):
        raise OAuthError("invalid_request", "login_hint must be tel:+<E.164> or +<E.164>")
    return number[1:]


def valid_challenge(challenge: str) -> bool:
    return _CHALLENGE.match(challenge) is not None


def pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding equals the challenge."""
    if not _VERIFIER.match(verifier):
        return False
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return secrets.compare_digest(computed, challenge)


@dataclass(frozen=True)
class Grant:
    """What a code, an auth_req_id or an access token stands for.

    `msisdn` is the line the token speaks for (E.164 digits): the one the network recognised on
    the front channel, or CIBA's login_hint; None for a device that was not on mobile data and
    for two-legged (client-credentials) tokens. `network_auth` is the token's `amr=nba`: only
    the front channel over mobile data authenticates by network, which Number Verification
    requires."""

    client_id: str
    permissions: tuple[str, ...]
    scope: str
    msisdn: str | None
    network_auth: bool
    three_legged: bool = True
    redirect_uri: str = ""
    challenge: str = ""
    # OIDC: the authorize request's nonce, when it named `openid` (an id_token is then due)
    nonce: str = ""
    openid: bool = False
    auth_time: int = 0

    def allows(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def single_use(self) -> bool:
        # CAMARA Number Verification: a token with its scopes is good for one API call
        return any(p in NV_PERMISSIONS for p in self.permissions)

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: bytes) -> Grant:
        data = json.loads(raw)
        data["permissions"] = tuple(data["permissions"])
        return cls(**data)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def save_code(redis: Redis, grant: Grant) -> str:
    code = secrets.token_urlsafe(24)
    await redis.set(CAMARA_CODE_PREFIX + _digest(code), grant.dumps(), ex=CODE_TTL)
    return code


async def take_code(redis: Redis, code: str) -> Grant | None:
    """The code's grant, deleted in the same step: a code is redeemed at most once."""
    if not _OPAQUE.match(code):
        return None
    raw = await redis.getdel(CAMARA_CODE_PREFIX + _digest(code))
    return None if raw is None else Grant.loads(raw)


async def save_auth_req(redis: Redis, grant: Grant) -> str:
    auth_req_id = secrets.token_urlsafe(24)
    await redis.set(CAMARA_CIBA_PREFIX + _digest(auth_req_id), grant.dumps(), ex=CIBA_TTL)
    return auth_req_id


async def take_auth_req(redis: Redis, auth_req_id: str) -> Grant | None:
    if not _OPAQUE.match(auth_req_id):
        return None
    raw = await redis.getdel(CAMARA_CIBA_PREFIX + _digest(auth_req_id))
    return None if raw is None else Grant.loads(raw)


async def issue_token(redis: Redis, grant: Grant) -> tuple[str, int]:
    token = secrets.token_urlsafe(32)
    await redis.set(CAMARA_TOKEN_PREFIX + _digest(token), grant.dumps(), ex=TOKEN_TTL)
    return token, TOKEN_TTL


async def peek_token(redis: Redis, token: str) -> Grant | None:
    """The live token's grant, left in place (the API spends it once the call is answered)."""
    if not _OPAQUE.match(token):
        return None
    raw = await redis.get(CAMARA_TOKEN_PREFIX + _digest(token))
    return None if raw is None else Grant.loads(raw)


async def consume_token(redis: Redis, token: str) -> bool:
    """Spend a single-use token; False when a concurrent call spent it first."""
    return bool(await redis.delete(CAMARA_TOKEN_PREFIX + _digest(token)))


# ---- client authentication ----------------------------------------------------------------------


def _invalid_client(description: str = "client authentication failed") -> OAuthError:
    return OAuthError("invalid_client", description, status=401)


async def authenticate_client(
    redis: Redis,
    *,
    authorization: str | None,
    form: dict[str, str],
    audiences: frozenset[str],
    leeway: int,
) -> Application:
    """The application calling an OAuth endpoint; OAuthError invalid_client (401) otherwise.

    Exactly one method per request (RFC 6749 §2.3): the application's Bearer JWT, or an RFC 7523
    client assertion whose `aud` is one of `audiences` (the issuer or the endpoint's URL)."""
    assertion = form.get("client_assertion")
    assertion_type = form.get("client_assertion_type")
    if authorization and (assertion is not None or assertion_type is not None):
        raise OAuthError("invalid_request", "use one client authentication method, not two")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _invalid_client("only Bearer application JWTs or private_key_jwt are accepted")
        try:
            principal = await auth.authenticate(redis, authorization, leeway)
        except auth.AuthError:
            raise _invalid_client() from None
        client_id = form.get("client_id")
        if client_id is not None and client_id != principal.app.id:
            raise _invalid_client("client_id does not match the credentials")
        return principal.app
    if assertion is None and assertion_type is None:
        raise _invalid_client("client authentication is required")
    if assertion_type != ASSERTION_TYPE or not assertion:
        raise _invalid_client("client_assertion_type must be " + ASSERTION_TYPE)
    return await _client_assertion(redis, assertion, form.get("client_id"), audiences, leeway)


async def _client_assertion(
    redis: Redis, assertion: str, client_id: str | None, audiences: frozenset[str], leeway: int
) -> Application:
    """RFC 7523 §3: iss = sub = client id, aud names us, exp soon, jti unseen; RS256 only."""
    if len(assertion) > 8192:
        raise _invalid_client()
    try:
        header, unverified = auth._unverified_parts(assertion)
    except auth.AuthError:
        raise _invalid_client() from None
    # the algorithm is pinned: the assertion never chooses ("none", HS256 with a public key)
    if header.get("alg") != "RS256":
        raise _invalid_client()
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer or len(issuer) > 64:
        raise _invalid_client()
    app = await get_app_cached(redis, issuer)
    if app is None:
        raise _invalid_client()
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            auth._public_key(app),
            algorithms=["RS256"],
            audience=sorted(audiences),
            issuer=app.id,
            leeway=leeway,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
    except jwt.PyJWTError:
        raise _invalid_client() from None
    now = time.time()
    if claims["sub"] != app.id or (client_id is not None and client_id != app.id):
        raise _invalid_client()
    exp = claims["exp"]
    if not isinstance(exp, int | float) or exp > now + MAX_ASSERTION_LIFETIME + leeway:
        raise _invalid_client("client_assertion must expire within 300 s")
    iat = claims.get("iat")
    if iat is not None and (not isinstance(iat, int | float) or iat > now + leeway):
        raise _invalid_client()
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > 128:
        raise _invalid_client()
    ttl = max(int(exp + leeway - now) + 1, 1)
    key = f"{CAMARA_ASSERTION_JTI_PREFIX}{app.id}:{_digest(jti)}"
    if not await redis.set(key, b"1", ex=ttl, nx=True):
        raise _invalid_client("client_assertion was already used")
    return app


# ---- the operator's own key: id_tokens and the JWKS -------------------------------------------

_SIGNERS: dict[bytes, tuple[rsa.RSAPrivateKey, str]] = {}


async def _signer(redis: Redis) -> tuple[rsa.RSAPrivateKey, str, bytes]:
    """The deployment's signing key (shared by every web process through Redis) and its kid."""
    pem = await redis.get(CAMARA_SIGNING_KEY)
    if pem is None:
        fresh = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        encoded = fresh.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # whoever writes first wins; everyone then reads the same key
        await redis.set(CAMARA_SIGNING_KEY, encoded, nx=True)
        pem = await redis.get(CAMARA_SIGNING_KEY)
        assert pem is not None
    pem = bytes(pem)
    cached = _SIGNERS.get(pem)
    if cached is None:
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        cached = (key, hashlib.sha256(der).hexdigest()[:16])
        _SIGNERS.clear()
        _SIGNERS[pem] = cached
    return cached[0], cached[1], pem


async def jwks(redis: Redis) -> dict[str, Any]:
    key, kid, _ = await _signer(redis)
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    assert isinstance(jwk, dict)
    return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}


async def id_token(redis: Redis, grant: Grant, issuer: str) -> str:
    """An OIDC id_token for the grant's user, pseudonymous as CAMARA requires: `sub` is a
    per-client HMAC of the line, so it never reveals the number and differs between clients."""
    key, kid, pem = await _signer(redis)
    now = int(time.time())
    subject = f"{grant.client_id}|{grant.msisdn or 'unidentified:' + secrets.token_hex(8)}"
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": hmac.new(pem, subject.encode(), hashlib.sha256).hexdigest(),
        "aud": grant.client_id,
        "iat": now,
        "exp": now + TOKEN_TTL,
        "auth_time": grant.auth_time or now,
    }
    if grant.network_auth:
        claims["amr"] = ["nba"]
    if grant.nonce:
        claims["nonce"] = grant.nonce
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

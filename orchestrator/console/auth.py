"""Who is looking at the console: the operator (VERIFY_CONSOLE_TOKEN) or one account.

Three ways in, checked in this order:
- `Authorization: Bearer <console token>`: the operator, for scripts and curl;
- `Authorization: Basic <AC sid or SK sid>:<auth token or key secret>`: that account only;
- the cookie the login form sets (`vo_console`, HttpOnly, SameSite=Strict, Path=/console):
  `o.<expiry>.<mac>` or `a.<AC sid>.<expiry>.<mac>`, the mac an HMAC under the server key of the
  expiry and the credential itself, so rotating the console token or the auth token ends every
  session made with the old one, and nothing secret sits in the browser.

Every comparison is constant-time. Failed Basic attempts are counted by the Basic-auth lockout
middleware (the handler raises AuthError inside it); failed form logins and bearer tokens are
counted here in the same windows (the account sid as username, or the client IP only for the
console token, so nobody can lock the operator out by name).

State-changing forms carry a CSRF token: an HMAC of what authenticated the request (the cookie,
or the Authorization header); and a POST whose Origin is another site is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from pydantic import SecretStr

from orchestrator.domain import errors
from orchestrator.http.keys import SERVICES
from orchestrator.security import lockout
from orchestrator.security.auth import AuthError, basic_credentials
from orchestrator.services import Services
from orchestrator.tenants.accounts import get_account, resolve_basic

__all__ = [
    "COOKIE",
    "Viewer",
    "check_csrf",
    "configured_token",
    "csrf_token",
    "identify",
    "login_account",
    "login_operator",
    "session_cookie",
]

COOKIE = "vo_console"
SESSION_SECONDS = 8 * 3600
_MAC = "console-session"
_CSRF = "console-csrf"


@dataclass(frozen=True)
class Viewer:
    """`account` None: the operator, who sees every application and service."""

    account: str | None
    via: Literal["bearer", "basic", "cookie"]
    binding: str  # what authenticated the request: the CSRF token is derived from it

    @property
    def label(self) -> str:
        return "operator" if self.account is None else self.account


def configured_token(services: Services) -> str | None:
    # `console_token: SecretStr | None` in Settings (read defensively until it is there)
    value = getattr(services.settings, "console_token", None)
    if isinstance(value, SecretStr) and value.get_secret_value():
        return value.get_secret_value()
    return None


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two strings of any lengths (compared as digests)."""
    return hmac.compare_digest(
        hashlib.sha256(a.encode()).digest(), hashlib.sha256(b.encode()).digest()
    )


def _mac(services: Services, payload: str) -> str:
    return services.tools.hash_code(_MAC, payload)[:43]


def session_cookie(services: Services, account: str | None, secret: str, now: float) -> str:
    """The cookie value for a session of the operator (account None) or of an account."""
    expiry = str(int(now) + SESSION_SECONDS)
    if account is None:
        return f"o.{expiry}.{_mac(services, f'o|{expiry}|{secret}')}"
    return f"a.{account}.{expiry}.{_mac(services, f'a|{account}|{expiry}|{secret}')}"


async def _from_cookie(services: Services, value: str) -> Viewer | None:
    parts = value.split(".")
    now = time.time()
    if len(parts) == 3 and parts[0] == "o":
        token = configured_token(services)
        _, expiry, mac = parts
        if token is None or not expiry.isdigit() or int(expiry) < now:
            return None
        if _same(mac, _mac(services, f"o|{expiry}|{token}")):
            return Viewer(None, "cookie", value)
        return None
    if len(parts) == 4 and parts[0] == "a":
        _, sid, expiry, mac = parts
        if not expiry.isdigit() or int(expiry) < now:
            return None
        account = await get_account(services.redis, sid)
        if account is None:
            return None
        if _same(mac, _mac(services, f"a|{sid}|{expiry}|{account.auth_token}")):
            return Viewer(sid, "cookie", value)
    return None


async def _operator_attempt(request: web.Request, candidate: str) -> bool:
    """Whether `candidate` is the console token; a wrong one counts against the client IP."""
    services = request.app[SERVICES]
    watch = request.app.get(lockout.BLOCK_WATCH)
    locked = await lockout.throttled_for(
        services.redis, services.settings, "", request.remote, watch
    )
    if locked is not None:
        raise errors.Throttled("auth_" + locked[0], locked[1])
    token = configured_token(services)
    if token is not None and _same(candidate, token):
        return True
    await lockout.record_failure(services.redis, services.settings, "", request.remote, watch)
    return False


async def identify(request: web.Request) -> Viewer | None:
    """The viewer, or None when the request carries no credentials at all. Wrong credentials
    raise AuthError (401; Basic ones are counted by the lockout middleware)."""
    services = request.app[SERVICES]
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        binding = hashlib.sha256(header.encode()).hexdigest()
        if scheme == "bearer" and value.strip():
            if await _operator_attempt(request, value.strip()):
                return Viewer(None, "bearer", binding)
            raise AuthError()
        if scheme == "basic":
            user, password = basic_credentials(header)
            account = await resolve_basic(services.redis, user, password)
            if account is None:
                raise AuthError()
            return Viewer(account.sid, "basic", binding)
        raise AuthError()
    cookie = request.cookies.get(COOKIE)
    if cookie and len(cookie) < 200:
        return await _from_cookie(services, cookie)
    return None


async def login_operator(request: web.Request, token: str) -> str | None:
    """The session cookie for a right console token, else None (the failure is counted)."""
    services = request.app[SERVICES]
    if not token or len(token) > 512 or not await _operator_attempt(request, token):
        return None
    secret = configured_token(services)
    assert secret is not None
    return session_cookie(services, None, secret, time.time())


async def login_account(request: web.Request, sid: str, secret: str) -> str | None:
    """The session cookie for an AC/SK sid and its secret, else None (the failure is counted
    against the sid, as a failed Basic header would be)."""
    services = request.app[SERVICES]
    user = sid[:64]
    watch = request.app.get(lockout.BLOCK_WATCH)
    locked = await lockout.throttled_for(
        services.redis, services.settings, user, request.remote, watch
    )
    if locked is not None:
        raise errors.Throttled("auth_" + locked[0], locked[1])
    account = None
    if user.startswith(("AC", "SK")) and len(secret) <= 512:
        account = await resolve_basic(services.redis, user, secret)
    if account is None:
        await lockout.record_failure(services.redis, services.settings, user, request.remote, watch)
        return None
    return session_cookie(services, account.sid, account.auth_token, time.time())


def csrf_token(services: Services, viewer: Viewer) -> str:
    return services.tools.hash_code(_CSRF, viewer.binding)[:32]


def _origin_ok(request: web.Request, public_url: str) -> bool:
    """A POST from this very origin: the browser says so (Sec-Fetch-Site, Origin), or it is no
    browser (neither header: curl, scripts). `Origin: null` (a sandboxed frame) is refused."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    own = f"{request.scheme}://{request.host}"
    public = public_url.rstrip("/")
    return origin in (own, public)


def check_csrf(request: web.Request, viewer: Viewer | None, presented: str) -> bool:
    """Whether a POST may change something: same site and, once signed in, the right token."""
    services = request.app[SERVICES]
    if not _origin_ok(request, services.settings.public_url):
        return False
    if viewer is None:
        return True
    return _same(presented, csrf_token(services, viewer))

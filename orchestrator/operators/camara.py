"""A CAMARA operator (`kind = "camara"`): Number Verification and SIM Swap over the standards.

Number Verification (front channel, OIDC authorization code with network-based authentication):
the device is sent to the operator's authorize endpoint with `prompt=none`, `login_hint=tel:+…`
and a PKCE S256 challenge (RFC 7636); the operator recognises the line over mobile data and
redirects back with a code; the backend redeems it at the token endpoint (with the verifier and
its client authentication) and asks `POST {number_verification_url}/verify` once with the
single-use token.

SIM Swap (back channel, CIBA poll mode): `bc-authorize` with `login_hint=tel:+…`, then polling the
token endpoint with the `urn:openid:params:grant-type:ciba` grant (respecting `interval`,
`authorization_pending` and `slow_down`), then `POST {sim_swap_url}/check`.

Client authentication: `private_key_jwt` (RFC 7523 assertion, iss = sub = client_id, ≤ 60 s), the
client secret (basic or post, RFC 6749 §2.3.1), or `bearer_jwt`, Vonage's Network APIs' own: an
RS256 application JWT (application_id, iat, exp, jti) as `Authorization: Bearer`.

The PKCE verifier is an HMAC of the `state` under a key the operator is given, so nothing has to
be stored between the two hops. Failures never leave this module as exceptions on the device path
(they become failed outcomes whose reasons a webhook can carry); SIM Swap raises
OperatorUnavailable, and the gate decides fail-open or fail-closed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import aiohttp
import jwt

from orchestrator.operators.base import (
    DeviceOutcome,
    Operator,
    OperatorUnavailable,
    oauth_error_outcome,
)
from orchestrator.operators.camara_config import (
    NUMBER_VERIFICATION_SCOPE,
    SIM_SWAP_SCOPE,
    CamaraConfig,
    CamaraScopes,
    jwt_algorithm,
    pkce_challenge,
    pkce_verifier,
    safe_url,
    signing_key,
)

__all__ = [
    "CIBA_GRANT",
    "NUMBER_VERIFICATION_SCOPE",
    "SIM_SWAP_SCOPE",
    "CamaraConfig",
    "CamaraOperator",
    "CamaraScopes",
    "pkce_verifier",
]

log = logging.getLogger("orchestrator.operators")

CIBA_GRANT = "urn:openid:params:grant-type:ciba"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60  # CAMARA: client assertions live at most 300 s
BEARER_JWT_LIFETIME = 300
NOT_ON_MOBILE = "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK"
CIBA_DEFAULT_INTERVAL = 5  # CIBA core §7.3: absent interval means 5 s
MAX_REPLY_BYTES = 65536
_CAMARA_CODE = re.compile(r"[A-Z0-9_.]{1,96}")
_DIGITS = re.compile(r"[1-9][0-9]{4,14}")  # CAMARA's phoneNumber without its "+"


@dataclass(frozen=True)
class _Endpoints:
    authorize: str | None
    token: str | None
    bc_authorize: str | None
    issuer: str | None


@dataclass(frozen=True)
class _Reply:
    status: int
    correlator: str | None
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


class _Fault(Exception):
    """A failure on the way, as the reason a webhook will carry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _oauth_error(reply: _Reply) -> str | None:
    """The `error` of an RFC 6749 §5.2 error reply, None if the reply is not one."""
    doc = reply.json()
    if reply.status in (400, 401) and isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    return None


def _camara_code(reply: _Reply) -> str | None:
    doc = reply.json()
    code = doc.get("code") if isinstance(doc, dict) else None
    return code if isinstance(code, str) and _CAMARA_CODE.fullmatch(code) else None


def _api_fault(reply: _Reply) -> _Fault:
    code = _camara_code(reply)
    if reply.status == 403 and code == NOT_ON_MOBILE:
        return _Fault("not_on_mobile_network")
    return _Fault(f"operator_error: {reply.status}" + (f" {code}" if code else ""))


def _wants_phone_number(reply: _Reply) -> bool:
    code = _camara_code(reply)
    return (reply.status, code) in ((422, "MISSING_IDENTIFIER"), (400, "INVALID_ARGUMENT"))


def _token_fault(reply: _Reply) -> _Fault:
    error = _oauth_error(reply)
    if error is not None:
        return _Fault(oauth_error_outcome(error).reason)
    return _Fault(f"operator_error: {reply.status}")


def _access_token(reply: _Reply) -> str:
    """The bearer token of a successful token reply (RFC 6749 §5.1)."""
    if reply.status != 200:
        raise _token_fault(reply)
    doc = reply.json()
    if not isinstance(doc, dict):
        raise _Fault("operator_error: bad json")
    token, kind = doc.get("access_token"), doc.get("token_type")
    if not isinstance(token, str) or not token:
        raise _Fault("operator_error: no access_token")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise _Fault("operator_error: token_type")
    return token


class CamaraOperator(Operator):
    """The client side of one CAMARA operator. `secret` keys the PKCE verifiers (the service's
    secret key will do: it is mixed with the operator's name and the state)."""

    def __init__(
        self,
        name: str,
        config: CamaraConfig,
        http: aiohttp.ClientSession,
        secret: bytes,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = config.name or name
        self.key = name
        self.config = config
        self._http = http
        self._secret = secret
        self._clock = clock
        self._sleep = sleep
        self._ssl = config.ssl_context()
        self._endpoints: _Endpoints | None = None
        self._discovery = asyncio.Lock()
        pem = config.private_key.get_secret_value() if config.private_key else None
        self._key = signing_key(pem) if pem else None

    # -- the Operator interface ------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._discover(self._clock() + self.config.timeout_seconds)
        except _Fault as fault:
            raise OperatorUnavailable(fault.reason) from None

    async def covers(self, msisdn: str) -> bool:
        digits = msisdn.lstrip("+")
        return any(digits.startswith(p) for p in self.config.prefixes)

    def prefixes(self) -> tuple[str, ...]:
        return tuple(self.config.prefixes)

    @property
    def verifies_numbers(self) -> bool:
        return self.config.number_verification_url is not None

    @property
    def checks_sim_swaps(self) -> bool:
        return self.config.sim_swap_url is not None

    async def authorize_url(self, *, msisdn: str, state: str, redirect_uri: str) -> str:
        try:
            endpoints = await self._discover(self._clock() + self.config.timeout_seconds)
        except _Fault as fault:
            raise OperatorUnavailable(fault.reason) from None
        if endpoints.authorize is None or not self.verifies_numbers:
            raise OperatorUnavailable("operator_error: no number verification")
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.config.scopes.number_verification,
                "state": state,
                "login_hint": f"tel:+{msisdn.lstrip('+')}",
                "prompt": "none",
                "code_challenge": pkce_challenge(pkce_verifier(self._secret, self.key, state)),
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if urlsplit(endpoints.authorize).query else "?"
        return f"{endpoints.authorize}{separator}{query}"

    async def exchange(
        self, code: str, msisdn: str, *, state: str, redirect_uri: str
    ) -> DeviceOutcome:
        try:
            return await self._exchange(code, msisdn, state, redirect_uri)
        except _Fault as fault:
            return DeviceOutcome("failed", fault.reason)
        except Exception as exc:  # the device's request must settle the step whatever happened
            log.warning("operator %s: exchange failed (%s)", self.key, type(exc).__name__)
            return DeviceOutcome("failed", "operator_error")

    async def sim_swapped(self, msisdn: str, max_age_hours: int) -> bool:
        if not 1 <= max_age_hours <= 2400:
            raise ValueError("max_age_hours must be 1..2400 (CAMARA's range)")
        if self.config.sim_swap_url is None:
            raise OperatorUnavailable("operator_error: no sim swap")
        try:
            return await self._sim_swapped(msisdn.lstrip("+"), max_age_hours)
        except _Fault as fault:
            raise OperatorUnavailable(fault.reason) from None
        except Exception as exc:
            log.warning("operator %s: sim swap check failed (%s)", self.key, type(exc).__name__)
            raise OperatorUnavailable("operator_error") from None

    # -- number verification ---------------------------------------------------------------

    async def _exchange(
        self, code: str, msisdn: str, state: str, redirect_uri: str
    ) -> DeviceOutcome:
        digits = msisdn.lstrip("+")
        root = self.config.number_verification_url
        if root is None:
            raise _Fault("operator_error: no number verification")
        if not code or len(code) > 2048:
            raise _Fault("oauth_error: missing code")
        if not _DIGITS.fullmatch(digits):
            raise _Fault("invalid_number")
        deadline = self._clock() + self.config.timeout_seconds
        endpoints = await self._discover(deadline)
        assert endpoints.token is not None  # the config demands it, or discovery did
        form = {
            "grant_type": "authorization_code",
            "code": code,
            # RFC 6749 §4.1.3: identical to the authorize request's
            "redirect_uri": redirect_uri,
            "code_verifier": pkce_verifier(self._secret, self.key, state),
        }
        token = _access_token(await self._token_call(endpoints, form, deadline))
        if self.config.hashed_phone_number:
            body = {"hashedPhoneNumber": hashlib.sha256(f"+{digits}".encode()).hexdigest()}
        else:
            body = {"phoneNumber": f"+{digits}"}
        reply = await self._api(f"{root}/verify", token, body, deadline)
        if reply.status != 200:
            raise _api_fault(reply)
        doc = reply.json()
        verified = doc.get("devicePhoneNumberVerified") if isinstance(doc, dict) else None
        if not isinstance(verified, bool):
            raise _Fault("operator_error: bad json")
        return (
            DeviceOutcome("completed") if verified else DeviceOutcome("failed", "number_mismatch")
        )

    # -- SIM swap --------------------------------------------------------------------------

    async def _sim_swapped(self, digits: str, max_age_hours: int) -> bool:
        root = self.config.sim_swap_url
        assert root is not None
        if not _DIGITS.fullmatch(digits):
            raise _Fault("invalid_number")
        deadline = self._clock() + self.config.timeout_seconds
        token = await self._ciba_token(digits, deadline)
        mode = self.config.sim_swap_phone_number
        body: dict[str, Any] = {"maxAge": max_age_hours}
        if mode == "always":
            body["phoneNumber"] = f"+{digits}"
        reply = await self._api(f"{root}/check", token, body, deadline)
        if mode == "auto" and _wants_phone_number(reply):
            # the token did not name the line (a 2-legged one), or the API predates the
            # identifier rules (SIM Swap 0.4 required phoneNumber): say which
            body["phoneNumber"] = f"+{digits}"
            reply = await self._api(f"{root}/check", token, body, deadline)
        if reply.status != 200:
            raise _api_fault(reply)
        doc = reply.json()
        swapped = doc.get("swapped") if isinstance(doc, dict) else None
        if not isinstance(swapped, bool):
            raise _Fault("operator_error: bad json")
        return swapped

    async def _ciba_token(self, digits: str, deadline: float) -> str:
        endpoints = await self._discover(deadline)
        if endpoints.bc_authorize is None or endpoints.token is None:
            raise _Fault("operator_error: no ciba endpoint")
        scope = self.config.scopes.sim_swap
        if "openid" not in scope.split():
            scope = f"openid {scope}"  # CIBA is an OpenID flow: its scope must hold openid
        form = {"scope": scope, "login_hint": f"tel:+{digits}"}
        # CIBA core §7.1: the OP accepts its issuer, token or bc-authorize URL as audience
        audience = endpoints.issuer or endpoints.token
        reply = await self._post_form(endpoints.bc_authorize, form, audience, deadline)
        if reply.status != 200:
            raise _token_fault(reply)
        doc = reply.json()
        if not isinstance(doc, dict):
            raise _Fault("operator_error: bad json")
        auth_req_id, expires_in = doc.get("auth_req_id"), doc.get("expires_in")
        interval = doc.get("interval", CIBA_DEFAULT_INTERVAL)
        if not isinstance(auth_req_id, str) or not auth_req_id:
            raise _Fault("operator_error: no auth_req_id")
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
            raise _Fault("operator_error: no expires_in")
        if not isinstance(interval, int | float) or isinstance(interval, bool):
            raise _Fault("operator_error: bad interval")
        wait = min(max(float(interval), 1.0), 60.0)
        deadline = min(deadline, self._clock() + float(expires_in))
        poll = {"grant_type": CIBA_GRANT, "auth_req_id": auth_req_id}
        while True:
            reply = await self._post_form(endpoints.token, poll, endpoints.token, deadline)
            if reply.status == 200:
                return _access_token(reply)
            error = _oauth_error(reply)
            if error == "slow_down":
                wait += 5  # CIBA core §11: increase the interval by at least 5 s
            elif error != "authorization_pending":
                raise _token_fault(reply)
            if self._clock() + wait >= deadline:
                raise _Fault("timeout")
            await self._sleep(wait)

    # -- discovery, client authentication, HTTP --------------------------------------------

    async def _discover(self, deadline: float) -> _Endpoints:
        """The endpoints: explicit ones, else the issuer's discovery document, fetched once
        (a failed fetch is retried next time rather than remembered)."""
        if self._endpoints is not None:
            return self._endpoints
        async with self._discovery:
            if self._endpoints is None:
                self._endpoints = await self._fetch_endpoints(deadline)
            return self._endpoints

    async def _fetch_endpoints(self, deadline: float) -> _Endpoints:
        c = self.config
        if c.issuer is None:
            return _Endpoints(c.authorize_url, c.token_url, c.bc_authorize_url, None)
        reply = await self._request(
            "GET", f"{c.issuer}/.well-known/openid-configuration", deadline, headers={}
        )
        if reply.status != 200:
            raise _Fault(f"discovery_failed: {reply.status}")
        doc = reply.json()
        if not isinstance(doc, dict):
            raise _Fault("discovery_failed: bad json")
        issuer = doc.get("issuer")
        # OIDC Discovery §4.3: the document's issuer is the one asked about
        if not isinstance(issuer, str) or issuer.rstrip("/") != c.issuer.rstrip("/"):
            raise _Fault("discovery_failed: issuer mismatch")

        def pick(explicit: str | None, key: str) -> str | None:
            if explicit is not None:
                return explicit
            found = doc.get(key)
            if found is None:
                return None
            if not isinstance(found, str) or not safe_url(found):
                raise _Fault(f"discovery_failed: bad {key}")
            return found

        endpoints = _Endpoints(
            pick(c.authorize_url, "authorization_endpoint"),
            pick(c.token_url, "token_endpoint"),
            pick(c.bc_authorize_url, "backchannel_authentication_endpoint"),
            issuer,
        )
        if endpoints.token is None:
            raise _Fault("discovery_failed: no token_endpoint")
        if self.verifies_numbers and endpoints.authorize is None:
            raise _Fault("discovery_failed: no authorization_endpoint")
        return endpoints

    def _assertion(self, audience: str) -> str:
        """RFC 7523 §3 client assertion: iss = sub = client_id, aud = the server, short-lived."""
        assert self._key is not None
        now = int(time.time())
        claims = {
            "iss": self.config.client_id,
            "sub": self.config.client_id,
            "aud": audience,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": str(uuid.uuid4()),
        }
        headers = {"kid": self.config.key_id} if self.config.key_id else None
        return jwt.encode(claims, self._key, algorithm=jwt_algorithm(self._key), headers=headers)

    def _application_jwt(self) -> str:
        """Vonage's application JWT: the client id is the application id."""
        assert self._key is not None
        now = int(time.time())
        claims = {
            "application_id": self.config.client_id,
            "iat": now,
            "exp": now + BEARER_JWT_LIFETIME,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._key, algorithm="RS256")

    def _authenticate(self, form: dict[str, str], headers: dict[str, str], audience: str) -> None:
        """Add the client authentication to a token or bc-authorize request (one method only,
        RFC 6749 §2.3)."""
        c = self.config
        secret = c.client_secret.get_secret_value() if c.client_secret else ""
        if c.client_auth == "private_key_jwt":
            form["client_id"] = c.client_id
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = self._assertion(audience)
        elif c.client_auth == "client_secret_basic":
            # RFC 6749 §2.3.1: both form-urlencoded before they are joined and base64-encoded
            pair = f"{quote_plus(c.client_id)}:{quote_plus(secret)}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        elif c.client_auth == "client_secret_post":
            form["client_id"] = c.client_id
            form["client_secret"] = secret
        else:
            headers["Authorization"] = f"Bearer {self._application_jwt()}"

    async def _token_call(
        self, endpoints: _Endpoints, form: dict[str, str], deadline: float
    ) -> _Reply:
        assert endpoints.token is not None
        return await self._post_form(endpoints.token, form, endpoints.token, deadline)

    async def _post_form(
        self, url: str, form: dict[str, str], audience: str, deadline: float
    ) -> _Reply:
        body = dict(form)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        self._authenticate(body, headers, audience)
        return await self._request(
            "POST", url, deadline, headers=headers, data=urlencode(body).encode()
        )

    async def _api(self, url: str, token: str, body: dict[str, Any], deadline: float) -> _Reply:
        """A CAMARA API call with a fresh x-correlator, whose echo must match if there is one."""
        correlator = str(uuid.uuid4())
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "x-correlator": correlator,
        }
        reply = await self._request(
            "POST", url, deadline, headers=headers, data=json.dumps(body).encode()
        )
        if reply.correlator is not None and reply.correlator != correlator:
            raise _Fault("operator_error: x-correlator mismatch")
        return reply

    async def _request(
        self,
        method: str,
        url: str,
        deadline: float,
        *,
        headers: dict[str, str],
        data: bytes | None = None,
    ) -> _Reply:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise _Fault("timeout")
        try:
            async with self._http.request(
                method,
                url,
                headers=headers,
                data=data,
                ssl=self._ssl,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=remaining),
            ) as response:
                raw = await response.content.read(MAX_REPLY_BYTES + 1)
                if len(raw) > MAX_REPLY_BYTES:
                    raise _Fault("operator_error: oversized reply")
                return _Reply(response.status, response.headers.get("x-correlator"), raw)
        except TimeoutError:
            raise _Fault("timeout") from None
        except (aiohttp.ClientSSLError, ssl.SSLError):
            raise _Fault("operator_error: tls") from None
        except aiohttp.ClientError:
            raise _Fault("operator_unreachable") from None

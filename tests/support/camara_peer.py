"""A strict local CAMARA operator: OIDC discovery, authorize, CIBA, token, Number Verification and
SIM Swap, each request checked against the standards a client must follow.

- discovery `/.well-known/openid-configuration` (issuer = the peer's base URL);
- `GET /authorize` (RFC 6749 §4.1.1 + RFC 7636 + CAMARA): response_type=code, a registered
  client and redirect_uri (else a 400 page, never a redirect), the scope, state, `prompt=none`,
  `login_hint=tel:+E164`, a PKCE S256 challenge; the "network" recognises the device by the
  `X-Device-Line` header (absent: not on mobile data) and redirects with a single-use code
  (300 s) — or with `error=` when `authorize_error` is set;
- `POST /bc-authorize` (CIBA poll mode): client authentication, `openid` in the scope, exactly one
  hint, `login_hint=tel:+E164`; answers auth_req_id, expires_in, interval;
- `POST /token`: form-encoded, exactly one client authentication (RFC 6749 §2.3), checked per the
  client's registered method: client_secret_basic / _post, private_key_jwt (RFC 7523: signature,
  iss = sub = client_id, aud = issuer / token / bc-authorize URL, exp ≤ 300 s after iat, a jti
  never seen before) or bearer_jwt (Vonage's RS256 application JWT); the authorization_code grant
  checks code, redirect_uri and code_verifier; the CIBA grant follows `ciba_script`
  (e.g. ["authorization_pending", "slow_down", "ok"]);
- `POST /number-verification/v2/verify`, `POST /sim-swap/v2/check`: the Bearer token (number
  verification tokens single use), the body against the CAMARA YAML's schema, closed (an unknown
  property is 400 INVALID_ARGUMENT), x-correlator's pattern, echoed; CAMARA error bodies
  {status, code, message}. A token without a line gets 403
  NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK; a phoneNumber with a 3-legged
  SIM swap token 422 UNNECESSARY_IDENTIFIER.

`faults[endpoint]` ("discovery", "authorize", "bc-authorize", "token", "verify", "check") makes
that endpoint answer "503" (or any status), "hang", "bad_json" or "correlator" (a wrong echo).
Every protocol violation a client commits is recorded in `violations` (and answered as the
standard says), so a test can assert the client made none.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode

import jwt
import yaml
from aiohttp import web
from jsonschema import Draft202012Validator

SPECS = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "camara"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
NOT_ON_MOBILE = "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_TEL = re.compile(r"tel:\+([1-9][0-9]{4,14})")
_FORM = "application/x-www-form-urlencoded"
# CAMARA_common's codes for the statuses a fault may inject
_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL",
    502: "BAD_GATEWAY",
    503: "UNAVAILABLE",
    504: "TIMEOUT",
}


def _resolve(node: Any, root: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolve(copy.deepcopy(target), root)
        return {k: _resolve(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, root) for v in node]
    return node


def _schema(spec: str, name: str) -> Draft202012Validator:
    """A component schema of a CAMARA YAML, refs resolved and closed (CAMARA_common: unknown
    properties are INVALID_ARGUMENT)."""
    root = yaml.safe_load((SPECS / spec).read_text())
    schema = _resolve(root["components"]["schemas"][name], root)
    schema["additionalProperties"] = False
    return Draft202012Validator(schema)


VERIFY_BODY = _schema("number-verification.yaml", "NumberVerificationRequestBody")
CHECK_BODY = _schema("sim-swap.yaml", "CreateCheckSimSwap")
_CORRELATOR = re.compile(
    yaml.safe_load((SPECS / "number-verification.yaml").read_text())["components"]["schemas"][
        "XCorrelator"
    ]["pattern"]
)


@dataclass
class Client:
    """A registered client: its authentication method and credential."""

    client_id: str
    method: str  # private_key_jwt | client_secret_basic | client_secret_post | bearer_jwt
    public_key: Any = None
    secret: str = ""
    redirect_uris: tuple[str, ...] = ()


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    line: str | None
    expires: float


@dataclass
class _Token:
    kind: str  # "nv" or "sim_swap"
    line: str | None
    expires: float
    three_legged: bool = True


@dataclass
class _Ciba:
    client_id: str
    line: str
    expires: float
    script: list[str]


@dataclass
class CamaraPeer:
    clients: dict[str, Client] = field(default_factory=dict)
    nv_scope: str = "dpv:FraudPreventionAndDetection#number-verification-verify-read"
    sim_swap_scope: str = "dpv:FraudPreventionAndDetection#check-sim-swap"
    swaps: dict[str, datetime] = field(default_factory=dict)  # line (digits) -> latest change
    faults: dict[str, str] = field(default_factory=dict)
    authorize_error: str | None = None  # e.g. "access_denied": the authorize hop answers it
    ciba_script: list[str] = field(default_factory=lambda: ["ok"])
    interval: int = 2
    two_legged_sim_swap: bool = False  # CIBA tokens that don't name the line
    phone_number_required: bool = False  # SIM Swap 0.4 (Vonage's v040): phoneNumber required
    base: str = ""  # set once the server listens: the issuer
    violations: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    _codes: dict[str, _Code] = field(default_factory=dict)
    _tokens: dict[str, _Token] = field(default_factory=dict)
    _ciba: dict[str, _Ciba] = field(default_factory=dict)
    _jtis: set[str] = field(default_factory=set)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    # -- wiring ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/bc-authorize", self.bc_authorize)
        app.router.add_post("/token", self.token)
        app.router.add_post("/number-verification/v2/verify", self.verify)
        app.router.add_post("/sim-swap/v2/check", self.check)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _: web.Application) -> None:
        self._release.set()

    def release(self) -> None:
        """Let hanging handlers end (before the server stops)."""
        self._release.set()

    @property
    def token_url(self) -> str:
        return f"{self.base}/token"

    def _violation(self, text: str) -> None:
        self.violations.append(text)

    async def _fault(self, endpoint: str, correlator: str | None = None) -> web.Response | None:
        """The injected fault of `endpoint`, as the response to give (None: behave)."""
        fault = self.faults.get(endpoint)
        if fault is None or fault == "correlator":
            return None
        if fault == "hang":
            try:
                await asyncio.wait_for(self._release.wait(), 30)
            except TimeoutError:
                pass
            return web.Response(status=504)
        if fault == "bad_json":
            return web.Response(text="<html>oops", content_type="application/json")
        status = int(fault)
        code = _CODES.get(status, "INTERNAL")
        return _camara_error(status, code, "injected fault", correlator)

    # -- OIDC discovery and the authorize hop ------------------------------------------------

    async def discovery(self, request: web.Request) -> web.Response:
        self.requests.append("discovery")
        if (fault := await self._fault("discovery")) is not None:
            return fault
        return web.json_response(
            {
                "issuer": self.base,
                "authorization_endpoint": f"{self.base}/authorize",
                "token_endpoint": self.token_url,
                "backchannel_authentication_endpoint": f"{self.base}/bc-authorize",
                "backchannel_token_delivery_modes_supported": ["poll"],
                "grant_types_supported": ["authorization_code", CIBA_GRANT],
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "private_key_jwt",
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
            }
        )

    async def authorize(self, request: web.Request) -> web.Response:
        self.requests.append("authorize")
        if (fault := await self._fault("authorize")) is not None:
            return fault
        q = request.query
        for key in q:
            if len(q.getall(key)) > 1:  # RFC 6749 §3.1: no parameter twice
                self._violation(f"authorize: {key} repeated")
                return web.Response(status=400, text="repeated parameter")
        client = self.clients.get(q.get("client_id", ""))
        redirect_uri = q.get("redirect_uri", "")
        # §4.1.2.1: with a bad client or redirect_uri, tell the user, never redirect
        if client is None or redirect_uri not in client.redirect_uris:
            self._violation("authorize: unknown client or unregistered redirect_uri")
            return web.Response(status=400, text="invalid client or redirect_uri")
        state = q.get("state")

        def back(**params: str) -> web.Response:
            if state is not None:
                params["state"] = state
            raise web.HTTPFound(f"{redirect_uri}?{urlencode(params)}")

        problems = []
        if q.get("response_type") != "code":
            problems.append("response_type must be code")
        scopes = q.get("scope", "").split(" ")
        if "openid" not in scopes or self.nv_scope not in scopes:
            problems.append("scope lacks openid or the number verification scope")
        if not state:
            problems.append("no state")
        if q.get("prompt") != "none":
            problems.append("prompt must be none")
        hint = _TEL.fullmatch(q.get("login_hint", ""))
        if hint is None:
            problems.append("login_hint must be tel:+E164")
        challenge = q.get("code_challenge", "")
        if q.get("code_challenge_method") != "S256" or not re.fullmatch(
            r"[A-Za-z0-9_-]{43}", challenge
        ):
            problems.append("PKCE S256 challenge required")
        if problems:
            self._violation("authorize: " + "; ".join(problems))
            return back(error="invalid_request", error_description=problems[0])
        if self.authorize_error:
            return back(error=self.authorize_error)
        line = request.headers.get("X-Device-Line")  # the "network" knows the device's line
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(
            client.client_id, redirect_uri, challenge, line, time.time() + 300
        )
        return back(code=code)

    # -- client authentication ---------------------------------------------------------------

    def _authenticate(
        self, request: web.Request, form: dict[str, str], where: str
    ) -> Client | None:
        """The client the request authenticates as (RFC 6749 §2.3, RFC 7523 §3, Vonage's
        bearer JWT), None (and a violation) when it doesn't."""
        header = request.headers.get("Authorization", "")
        methods = [
            name
            for name, present in (
                ("basic", header.startswith("Basic ")),
                ("bearer", header.startswith("Bearer ")),
                ("post", "client_secret" in form),
                ("assertion", "client_assertion" in form or "client_assertion_type" in form),
            )
            if present
        ]
        if len(methods) != 1:
            self._violation(f"{where}: {len(methods)} client authentication methods")
            return None
        method = methods[0]
        client: Client | None = None
        if method == "basic":
            try:
                raw = base64.b64decode(header[6:], validate=True).decode()
                user, _, password = raw.partition(":")
            except (ValueError, UnicodeDecodeError):
                self._violation(f"{where}: bad basic credentials")
                return None
            client = self.clients.get(unquote_plus(user))
            if client is None or client.method != "client_secret_basic":
                self._violation(f"{where}: basic auth for a client not registered for it")
                return None
            if unquote_plus(password) != client.secret:
                self._violation(f"{where}: wrong client secret")
                return None
        elif method == "post":
            client = self.clients.get(form.get("client_id", ""))
            if client is None or client.method != "client_secret_post":
                self._violation(f"{where}: client_secret_post not registered")
                return None
            if form.get("client_secret") != client.secret:
                self._violation(f"{where}: wrong client secret")
                return None
        elif method == "assertion":
            client = self._assertion_client(form, where)
        else:
            client = self._bearer_client(header[7:], where)
        if client is not None and "client_id" in form and form["client_id"] != client.client_id:
            self._violation(f"{where}: client_id differs from the authenticated client")
            return None
        return client

    def _assertion_client(self, form: dict[str, str], where: str) -> Client | None:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            self._violation(f"{where}: client_assertion_type")
            return None
        token = form.get("client_assertion", "")
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            self._violation(f"{where}: client_assertion is no JWT")
            return None
        client = self.clients.get(str(claims.get("iss", "")))
        if client is None or client.method != "private_key_jwt":
            self._violation(f"{where}: assertion issuer not a private_key_jwt client")
            return None
        audiences = [self.base, self.token_url, f"{self.base}/bc-authorize"]
        try:
            claims = jwt.decode(
                token,
                client.public_key,
                algorithms=[header.get("alg", "")]
                if header.get("alg") in ("RS256", "ES256")
                else [],
                audience=audiences,
                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
            )
        except jwt.PyJWTError as exc:
            self._violation(f"{where}: assertion rejected ({type(exc).__name__})")
            return None
        if claims["sub"] != client.client_id:
            self._violation(f"{where}: assertion sub != iss")
            return None
        if claims["exp"] - claims["iat"] > 300:
            self._violation(f"{where}: assertion lives more than 300 s")
            return None
        if claims["jti"] in self._jtis:
            self._violation(f"{where}: assertion jti replayed")
            return None
        self._jtis.add(claims["jti"])
        return client

    def _bearer_client(self, token: str, where: str) -> Client | None:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            self._violation(f"{where}: bearer is no JWT")
            return None
        client = self.clients.get(str(unverified.get("application_id", "")))
        if client is None or client.method != "bearer_jwt":
            self._violation(f"{where}: bearer JWT of no bearer_jwt application")
            return None
        try:
            claims = jwt.decode(
                token,
                client.public_key,
                algorithms=["RS256"],
                options={"require": ["application_id", "iat", "exp", "jti"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            self._violation(f"{where}: bearer JWT rejected ({type(exc).__name__})")
            return None
        if claims["jti"] in self._jtis:
            self._violation(f"{where}: bearer JWT jti replayed")
            return None
        self._jtis.add(claims["jti"])
        return client

    async def _form(self, request: web.Request, where: str) -> dict[str, str] | None:
        if request.content_type != _FORM:
            self._violation(f"{where}: content type {request.content_type}")
            return None
        pairs = parse_qsl(await request.text(), keep_blank_values=True)
        form = dict(pairs)
        if len(form) != len(pairs):
            self._violation(f"{where}: a parameter repeated")
            return None
        return form

    # -- CIBA and the token endpoint ---------------------------------------------------------

    async def bc_authorize(self, request: web.Request) -> web.Response:
        self.requests.append("bc-authorize")
        if (fault := await self._fault("bc-authorize")) is not None:
            return fault
        form = await self._form(request, "bc-authorize")
        if form is None:
            return _oauth_error("invalid_request")
        client = self._authenticate(request, form, "bc-authorize")
        if client is None:
            return _oauth_error("invalid_client", 401)
        scopes = form.get("scope", "").split(" ")
        hints = [k for k in ("login_hint", "login_hint_token", "id_token_hint") if k in form]
        hint = _TEL.fullmatch(form.get("login_hint", ""))
        if "openid" not in scopes or self.sim_swap_scope not in scopes:
            self._violation("bc-authorize: scope lacks openid or the SIM swap scope")
            return _oauth_error("invalid_scope")
        if hints != ["login_hint"] or hint is None:
            self._violation("bc-authorize: exactly one hint, login_hint=tel:+E164")
            return _oauth_error("invalid_request")
        auth_req_id = secrets.token_urlsafe(24)
        self._ciba[auth_req_id] = _Ciba(
            client.client_id, hint.group(1), time.time() + 120, list(self.ciba_script)
        )
        return web.json_response(
            {"auth_req_id": auth_req_id, "expires_in": 120, "interval": self.interval}
        )

    async def token(self, request: web.Request) -> web.Response:
        self.requests.append("token")
        if (fault := await self._fault("token")) is not None:
            return fault
        form = await self._form(request, "token")
        if form is None:
            return _oauth_error("invalid_request")
        client = self._authenticate(request, form, "token")
        if client is None:
            return _oauth_error("invalid_client", 401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._code_grant(client, form)
        if grant == CIBA_GRANT:
            return self._ciba_grant(client, form)
        self._violation(f"token: grant_type {grant!r}")
        return _oauth_error("unsupported_grant_type")

    def _code_grant(self, client: Client, form: dict[str, str]) -> web.Response:
        code = self._codes.pop(form.get("code", ""), None)  # single use, even when refused
        if code is None or code.expires < time.time() or code.client_id != client.client_id:
            return _oauth_error("invalid_grant")
        if form.get("redirect_uri") != code.redirect_uri:
            self._violation("token: redirect_uri differs from the authorize request's")
            return _oauth_error("invalid_grant")
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if not _VERIFIER.fullmatch(verifier) or challenge != code.challenge:
            self._violation("token: PKCE code_verifier does not match the challenge")
            return _oauth_error("invalid_grant")
        return self._issue(_Token("nv", code.line, time.time() + 300))

    def _ciba_grant(self, client: Client, form: dict[str, str]) -> web.Response:
        pending = self._ciba.get(form.get("auth_req_id", ""))
        if pending is None or pending.client_id != client.client_id:
            return _oauth_error("invalid_grant")
        if pending.expires < time.time():
            return _oauth_error("expired_token")
        step = pending.script.pop(0) if len(pending.script) > 1 else pending.script[0]
        if step != "ok":
            return _oauth_error(step)
        del self._ciba[form["auth_req_id"]]
        line = None if self.two_legged_sim_swap else pending.line
        return self._issue(
            _Token("sim_swap", line, time.time() + 300, three_legged=not self.two_legged_sim_swap)
        )

    def _issue(self, token: _Token) -> web.Response:
        value = secrets.token_urlsafe(32)
        self._tokens[value] = token
        body = {"access_token": value, "token_type": "Bearer", "expires_in": 300}
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    # -- the CAMARA APIs ---------------------------------------------------------------------

    async def _api_call(
        self, request: web.Request, endpoint: str, kind: str, schema: Draft202012Validator
    ) -> tuple[_Token, dict[str, Any], str | None] | web.Response:
        """Common checks of a CAMARA call: x-correlator, Bearer token, JSON body (closed)."""
        self.requests.append(endpoint)
        correlator = request.headers.get("x-correlator")
        if correlator is not None and not _CORRELATOR.fullmatch(correlator):
            self._violation(f"{endpoint}: x-correlator pattern")
            return _camara_error(400, "INVALID_ARGUMENT", "x-correlator", None)
        if (fault := await self._fault(endpoint, correlator)) is not None:
            return fault
        if self.faults.get(endpoint) == "correlator":
            correlator = "not-the-one-sent"
        auth = request.headers.get("Authorization", "")
        token = self._tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if kind == "nv" and token is not None:
            del self._tokens[auth[7:]]  # number verification tokens are single use
        if token is None or token.kind != kind or token.expires < time.time():
            return _camara_error(401, "UNAUTHENTICATED", "Request not authenticated.", correlator)
        if request.content_type != "application/json":
            self._violation(f"{endpoint}: content type {request.content_type}")
            return _camara_error(400, "INVALID_ARGUMENT", "JSON expected", correlator)
        try:
            body = json.loads(await request.read())
        except ValueError:
            self._violation(f"{endpoint}: body is no JSON")
            return _camara_error(400, "INVALID_ARGUMENT", "Invalid JSON", correlator)
        errors = sorted(schema.iter_errors(body), key=str)
        if errors or not isinstance(body, dict):
            self._violation(f"{endpoint}: body against the CAMARA schema: {errors[:1]}")
            return _camara_error(400, "INVALID_ARGUMENT", "Schema validation failed", correlator)
        return token, body, correlator

    async def verify(self, request: web.Request) -> web.Response:
        checked = await self._api_call(request, "verify", "nv", VERIFY_BODY)
        if isinstance(checked, web.Response):
            return checked
        token, body, correlator = checked
        if token.line is None:
            return _camara_error(
                403, NOT_ON_MOBILE, "The user was not authenticated by the network.", correlator
            )
        if "phoneNumber" in body:
            verified = body["phoneNumber"] == f"+{token.line}"
        else:
            digest = hashlib.sha256(f"+{token.line}".encode()).hexdigest()
            verified = body["hashedPhoneNumber"].lower() == digest
        return _json({"devicePhoneNumberVerified": verified}, correlator)

    async def check(self, request: web.Request) -> web.Response:
        checked = await self._api_call(request, "check", "sim_swap", CHECK_BODY)
        if isinstance(checked, web.Response):
            return checked
        token, body, correlator = checked
        if self.phone_number_required:
            if "phoneNumber" not in body:
                return _camara_error(400, "INVALID_ARGUMENT", "phoneNumber is required", correlator)
        elif token.three_legged and "phoneNumber" in body:
            return _camara_error(
                422, "UNNECESSARY_IDENTIFIER", "The device is already identified.", correlator
            )
        if not token.three_legged and "phoneNumber" not in body:
            return _camara_error(
                422, "MISSING_IDENTIFIER", "The device cannot be identified.", correlator
            )
        line = token.line or str(body["phoneNumber"]).lstrip("+")
        at = self.swaps.get(line)
        window = timedelta(hours=int(body.get("maxAge", 240)))
        swapped = at is not None and datetime.now(UTC) - at <= window
        return _json({"swapped": swapped}, correlator)


def _json(body: dict[str, Any], correlator: str | None) -> web.Response:
    headers = {"x-correlator": correlator} if correlator is not None else {}
    return web.json_response(body, headers=headers)


def _camara_error(status: int, code: str, message: str, correlator: str | None) -> web.Response:
    """CAMARA_common's ErrorInfo."""
    response = _json({"status": status, "code": code, "message": message}, correlator)
    response.set_status(status)
    return response


def _oauth_error(error: str, status: int = 400) -> web.Response:
    """RFC 6749 §5.2."""
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="camara-peer"'
    return web.json_response({"error": error}, status=status, headers=headers)

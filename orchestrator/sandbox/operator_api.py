"""The sandbox operator as a CAMARA operator: OIDC/CIBA endpoints and the Number Verification
and SIM Swap APIs, under `{public_url}/sandbox/operator/` (sandbox mode only).

It answers both at CAMARA's paths (`/number-verification/vwip/…`, `/sim-swap/vwip/…`, and the
released `v2`) and at the ones the official Vonage Network SDKs call (`/oauth2/bc-authorize`,
`/oauth2/token`, `/camara/number-verification/v031/verify`, `/camara/sim-swap/v040/…`), so the
SDKs work by changing only their host and our own `camara` operator adapter is tested against
the same strict server a real operator would be.

Choices where the specs leave room, as CAMARA operators make them:
- `/oauth2/auth` recognises the device by IP (the operator table, or the `X-Sandbox-Device-IP`
  header tests send) and always redirects back with a code once client and redirect URI are
  known. A device that is not on mobile data still gets a code, but its token carries no
  network authentication, so `/verify` answers 403
  `NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK` (the error the CAMARA spec
  defines for exactly that; the adapter maps it to a fallback).
- A 990… `login_hint` follows Vonage's virtual operator: …99 → `error=server_error`, odd →
  `error=access_denied` (the user declined), even → a code for a device on that very number.
- CIBA here authenticates at once (poll mode; the first token poll succeeds). Its tokens are for
  the `login_hint` line but not network-authenticated (no `amr=nba`): good for SIM Swap, while
  Number Verification with them answers the 403 above (CAMARA wants TS.43 tokens for that).
- SIM Swap at CAMARA's paths follows the identifier rules of sim-swap.yaml: a three-legged token
  already names the line, so a `phoneNumber` is 422 UNNECESSARY_IDENTIFIER; a two-legged
  (`client_credentials`) token needs one (422 MISSING_IDENTIFIER). At Vonage's v040 path the
  SDKs send `phoneNumber` with their CIBA token, as SIM Swap 0.4 required: there it must be the
  token's own line (403 INVALID_TOKEN_CONTEXT otherwise).
- With `openid` in scope the token response carries an RS256 `id_token` (key at `jwks_uri`,
  shared through Redis): `sub` pairwise and pseudonymous (never the number), `amr=["nba"]` only
  when the network authenticated the device, the authorize request's `nonce`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web
from redis.asyncio import Redis

from orchestrator.http.keys import SERVICES
from orchestrator.operators.sandbox import magic_outcome
from orchestrator.phone import is_sandbox_number
from orchestrator.sandbox import camara_wire as wire
from orchestrator.sandbox import operator_tokens as tokens
from orchestrator.sandbox.camara_wire import CamaraError
from orchestrator.sandbox.operator_tokens import Grant, OAuthError
from orchestrator.services import Services
from orchestrator.tenants.apps import get_app_cached

__all__ = ["BASE_PATH", "DEVICE_IP_HEADER", "setup_routes"]

log = logging.getLogger("orchestrator.web")

BASE_PATH = "/sandbox/operator"
# the same header orchestrator.sandbox.outbox_api reads: which "handset" is calling
DEVICE_IP_HEADER = "X-Sandbox-Device-IP"
NUMBER_VERIFICATION_PATHS = (
    "/camara/number-verification/v031",
    "/number-verification/vwip",
    "/number-verification/v2",
)
VONAGE_SIM_SWAP_PATH = "/camara/sim-swap/v040"
SIM_SWAP_PATHS = (VONAGE_SIM_SWAP_PATH, "/sim-swap/vwip", "/sim-swap/v2")
# 100 days: the sandbox remembers every change, at least as far back as maxAge can reach
MONITORED_DAYS = 100
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_PROMPTS = frozenset({"none", "login", "consent", "select_account"})


def _issuer(services: Services) -> str:
    return services.settings.public_url.rstrip("/") + BASE_PATH


def _oauth_error(exc: OAuthError) -> web.Response:
    headers = dict(_NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_client"'
    return web.json_response(exc.body(), status=exc.status, headers=headers)


# ---- discovery ----------------------------------------------------------------------------------


async def discovery(request: web.Request) -> web.Response:
    issuer = _issuer(request.app[SERVICES])
    return web.json_response(
        {
            "issuer": issuer,
            "authorization_endpoint": issuer + "/oauth2/auth",
            "token_endpoint": issuer + "/oauth2/token",
            "backchannel_authentication_endpoint": issuer + "/oauth2/bc-authorize",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": [
                "authorization_code",
                tokens.CIBA_GRANT,
                "client_credentials",
            ],
            "code_challenge_methods_supported": ["S256"],
            "prompt_values_supported": ["none"],
            "scopes_supported": sorted(tokens.SCOPES),
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "backchannel_token_delivery_modes_supported": ["poll"],
            "backchannel_user_code_parameter_supported": False,
            "jwks_uri": issuer + "/oauth2/jwks",
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["iss", "sub", "aud", "iat", "exp", "auth_time", "nonce", "amr"],
            "request_parameter_supported": False,
            "claims_parameter_supported": False,
            # besides private_key_jwt, the Vonage Network SDKs' client authentication:
            # `Authorization: Bearer <RS256 JWT of the Vonage application>` (application_id,
            # iat, jti, exp), checked as Verify v2 checks it; both name the application's key
            "vonage_application_jwt_supported": True,
        },
        headers={"Cache-Control": "public, max-age=60"},
    )


async def jwks(request: web.Request) -> web.Response:
    """The key id_tokens are signed with."""
    keys = await tokens.jwks(request.app[SERVICES].redis)
    return web.json_response(keys, headers={"Cache-Control": "public, max-age=60"})


# ---- front channel: /oauth2/auth ----------------------------------------------------------------


def _redirect_allowed(uri: str, public_url: str) -> bool:
    """This service's own pages, or a loopback http URL (RFC 8252 §7.3); never a fragment."""
    if not uri or len(uri) > 2048 or "#" in uri:
        return False
    # no whitespace or control characters: they would end up raw in the Location header
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in uri):
        return False
    if uri.startswith(public_url.rstrip("/") + "/"):
        return True
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        return False
    return parts.scheme == "http" and host in ("127.0.0.1", "::1", "localhost")


def _back(redirect_uri: str, params: dict[str, str]) -> web.Response:
    joiner = "&" if "?" in redirect_uri else "?"
    location = redirect_uri + joiner + urlencode(params)
    return web.Response(status=302, headers={"Location": location, **_NO_STORE})


async def authorize(request: web.Request) -> web.Response:
    """OIDC authorization endpoint with network-based authentication (the device's browser)."""
    services = request.app[SERVICES]
    query = request.query
    if any(len(query.getall(name)) > 1 for name in query):
        return _oauth_error(OAuthError("invalid_request", "a parameter is repeated"))
    client_id = query.get("client_id", "")
    app = await get_app_cached(services.redis, client_id) if 0 < len(client_id) <= 64 else None
    # no client, or a redirect URI we can't trust: tell the browser, never redirect (RFC 6749
    # §4.1.2.1), so the endpoint is no open redirect
    if app is None:
        return _oauth_error(OAuthError("invalid_request", "client_id is not a known application"))
    redirect_uri = query.get("redirect_uri", "")
    if not _redirect_allowed(redirect_uri, services.settings.public_url):
        return _oauth_error(OAuthError("invalid_request", "redirect_uri is not allowed"))
    state = query.get("state")
    try:
        grant = await _front_channel(request, services, app.id, redirect_uri)
    except OAuthError as exc:
        params = exc.body()
        if state is not None:
            params["state"] = state
        return _back(redirect_uri, params)
    code = await tokens.save_code(services.redis, grant)
    params = {"code": code}
    if state is not None:
        params["state"] = state
    return _back(redirect_uri, params)


async def _front_channel(
    request: web.Request, services: Services, client_id: str, redirect_uri: str
) -> Grant:
    query = request.query
    if query.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "response_type must be code")
    permissions, scope = tokens.grant_scope(query.get("scope"))
    if not permissions & tokens.NV_PERMISSIONS:
        raise OAuthError("invalid_scope", "scope must include a Number Verification scope")
    prompts = set(query.get("prompt", "none").split())
    if not prompts <= _PROMPTS or ("none" in prompts and len(prompts) > 1):
        raise OAuthError("invalid_request", "prompt is not valid")
    challenge = query.get("code_challenge", "")
    method = query.get("code_challenge_method")
    if challenge or method is not None:
        if method != "S256":
            raise OAuthError("invalid_request", "code_challenge_method must be S256")
        if not tokens.valid_challenge(challenge):
            raise OAuthError("invalid_request", "code_challenge is not a S256 challenge")
    nonce = query.get("nonce", "")
    if len(nonce) > 256:
        raise OAuthError("invalid_request", "nonce is too long")
    hint = query.get("login_hint")
    number = tokens.parse_login_hint(hint) if hint is not None else None
    if number is not None and is_sandbox_number(number):
        outcome = magic_outcome(number)
        if outcome.outcome == "user_rejected":
            raise OAuthError("access_denied", "The user rejected the authentication request.")
        if outcome.outcome == "failed":
            raise OAuthError("server_error", "The network could not authenticate the device.")
        line: str | None = number
    else:
        device_ip = (request.headers.get(DEVICE_IP_HEADER) or request.remote or "").strip()
        line = services.operator.table.msisdn_for(device_ip)
    return Grant(
        client_id=client_id,
        permissions=tuple(sorted(permissions)),
        scope=scope,
        msisdn=line,
        network_auth=line is not None,
        redirect_uri=redirect_uri,
        challenge=challenge,
        nonce=nonce,
        openid="openid" in scope.split(),
        auth_time=int(time.time()),
    )


# ---- back channel: /oauth2/bc-authorize and /oauth2/token ---------------------------------------


async def _form(request: web.Request) -> dict[str, str]:
    """The OAuth request's form parameters (RFC 6749: x-www-form-urlencoded, none repeated).

    A body labelled application/json is read as a form too unless it is a JSON object: the
    Vonage SDK keeps one header dict per client, so after its first JSON API call every form
    post it makes carries `Content-Type: application/json`."""
    if request.content_type not in ("application/x-www-form-urlencoded", "application/json"):
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    try:
        text = (await request.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the body is not UTF-8") from None
    if request.content_type == "application/json" and text.lstrip().startswith(("{", "[")):
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=32)
    except ValueError:
        raise OAuthError("invalid_request", "the body has too many parameters") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", "a parameter is repeated")
        form[name] = value
    return form


def _oauth(
    handler: Callable[[web.Request, Services, dict[str, str]], Awaitable[dict[str, Any]]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An OAuth endpoint: form in, JSON out, errors as RFC 6749 bodies, never a 500 page."""

    async def endpoint(request: web.Request) -> web.Response:
        services = request.app[SERVICES]
        try:
            body = await handler(request, services, await _form(request))
        except OAuthError as exc:
            return _oauth_error(exc)
        except web.HTTPRequestEntityTooLarge:
            return _oauth_error(OAuthError("invalid_request", "the body is too large"))
        except Exception:
            log.exception("sandbox operator: unhandled error on %s", request.path)
            return _oauth_error(OAuthError("server_error", "internal error", status=500))
        return web.json_response(body, headers=_NO_STORE)

    return endpoint


async def _client(request: web.Request, services: Services, form: dict[str, str]) -> str:
    issuer = _issuer(services)
    audiences = frozenset(
        {issuer, issuer + "/", issuer + "/oauth2/token", services.settings.public_url.rstrip("/")
         + request.path}
    )  # fmt: skip
    app = await tokens.authenticate_client(
        services.redis,
        authorization=request.headers.get("Authorization"),
        form=form,
        audiences=audiences,
        leeway=services.settings.jwt_leeway_seconds,
    )
    return app.id


async def _bc_authorize(
    request: web.Request, services: Services, form: dict[str, str]
) -> dict[str, Any]:
    """CIBA (poll mode): the line is named by `login_hint`; the request is granted at once."""
    client_id = await _client(request, services, form)
    if "login_hint_token" in form or "id_token_hint" in form:
        raise OAuthError("invalid_request", "only login_hint is supported")
    hint = form.get("login_hint")
    if not hint:
        raise OAuthError("invalid_request", "login_hint is required")
    number = tokens.parse_login_hint(hint)
    permissions, scope = tokens.grant_scope(form.get("scope"))
    if not await services.operator.covers(number):
        raise OAuthError("unknown_user_id", "login_hint is not a subscriber of this operator")
    grant = Grant(
        client_id=client_id,
        permissions=tuple(sorted(permissions)),
        scope=scope,
        msisdn=number,
        network_auth=False,
        openid="openid" in scope.split(),
        auth_time=int(time.time()),
    )
    auth_req_id = await tokens.save_auth_req(services.redis, grant)
    return {
        "auth_req_id": auth_req_id,
        "expires_in": tokens.CIBA_TTL,
        "interval": tokens.CIBA_INTERVAL,
    }


async def _token(request: web.Request, services: Services, form: dict[str, str]) -> dict[str, Any]:
    client_id = await _client(request, services, form)
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    redis = services.redis
    if grant_type == "authorization_code":
        grant = await _redeem_code(redis, client_id, form)
    elif grant_type == tokens.CIBA_GRANT:
        auth_req_id = form.get("auth_req_id")
        if not auth_req_id:
            raise OAuthError("invalid_request", "auth_req_id is required")
        found = await tokens.take_auth_req(redis, auth_req_id)
        if found is None or found.client_id != client_id:
            raise OAuthError("invalid_grant", "auth_req_id is unknown, expired or already used")
        grant = found
    elif grant_type == "client_credentials":
        permissions, scope = tokens.grant_scope(form.get("scope"))
        if not permissions <= tokens.SS_PERMISSIONS:
            raise OAuthError("invalid_scope", "only SIM Swap is offered with two-legged tokens")
        grant = Grant(client_id, tuple(sorted(permissions)), scope, None, False, False)
    else:
        raise OAuthError("unsupported_grant_type", "grant_type is not supported")
    access_token, expires_in = await tokens.issue_token(redis, grant)
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": grant.scope,
    }
    if grant.openid:
        body["id_token"] = await tokens.id_token(redis, grant, _issuer(services))
    return body


async def _redeem_code(redis: Redis, client_id: str, form: dict[str, str]) -> Grant:
    code = form.get("code")
    redirect_uri = form.get("redirect_uri")
    if not code or not redirect_uri:
        raise OAuthError("invalid_request", "code and redirect_uri are required")
    # taken before it is checked: a code presented wrongly is spent all the same (RFC 6749
    # §4.1.2: never redeemable twice)
    grant = await tokens.take_code(redis, code)
    if grant is None or grant.client_id != client_id or grant.redirect_uri != redirect_uri:
        raise OAuthError("invalid_grant", "code is unknown, expired, used or not for this request")
    verifier = form.get("code_verifier")
    if grant.challenge:
        if verifier is None or not tokens.pkce_matches(verifier, grant.challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
    elif verifier is not None:
        raise OAuthError("invalid_grant", "code_verifier given for a code without a challenge")
    return grant


# ---- the CAMARA APIs ----------------------------------------------------------------------------

Spend = Callable[[], Awaitable[None]]
Answer = Callable[[Services, Grant, dict[str, Any], Spend], Awaitable[dict[str, Any]]]


def _api(permission: str, answer: Answer, *, body: bool = True) -> Callable[
    [web.Request], Awaitable[web.Response]
]:  # fmt: skip
    """A CAMARA operation: x-correlator, Bearer token with `permission`, JSON body, error body."""

    async def endpoint(request: web.Request) -> web.Response:
        services = request.app[SERVICES]
        correlator: str | None = None
        headers: dict[str, str] = {}
        try:
            correlator = wire.correlator_of(request.headers.get(wire.CORRELATOR_HEADER))
            if correlator is not None:
                headers[wire.CORRELATOR_HEADER] = correlator
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise wire.unauthenticated()
            token = token.strip()
            grant = await tokens.peek_token(services.redis, token)
            if grant is None:
                raise wire.unauthenticated()
            if not grant.allows(permission):
                raise wire.permission_denied()
            data = wire.parse_body(request.content_type, await request.read()) if body else {}

            async def spend() -> None:
                if grant.single_use and not await tokens.consume_token(services.redis, token):
                    raise wire.unauthenticated()

            result = await answer(services, grant, data, spend)
        except CamaraError as exc:
            if exc.status == 401:
                headers["WWW-Authenticate"] = "Bearer"
            return web.json_response(exc.body(), status=exc.status, headers=headers)
        except web.HTTPRequestEntityTooLarge:
            error = wire.invalid("The request body is too large.")
            return web.json_response(error.body(), status=400, headers=headers)
        except Exception:
            log.exception("sandbox operator: unhandled error on %s", request.path)
            error = CamaraError(500, "INTERNAL", "Server error")
            return web.json_response(error.body(), status=500, headers=headers)
        return web.json_response(result, headers=headers)

    return endpoint


async def _verify(
    services: Services, grant: Grant, data: dict[str, Any], spend: Spend
) -> dict[str, Any]:
    check = wire.parse_verify_body(data)
    await spend()
    if not grant.network_auth or grant.msisdn is None:
        raise wire.not_by_network()
    return {"devicePhoneNumberVerified": check.matches(grant.msisdn)}


async def _device_number(
    services: Services, grant: Grant, data: dict[str, Any], spend: Spend
) -> dict[str, Any]:
    await spend()
    if not grant.network_auth or grant.msisdn is None:
        raise wire.not_by_network()
    return {"devicePhoneNumber": "+" + grant.msisdn}


def _swap_line(grant: Grant, phone: str | None, *, vonage: bool) -> str:
    """The line a SIM Swap call is about, by the identifier rules of its API version."""
    given = None if phone is None else phone[1:]
    if vonage:
        if given is None:
            raise wire.invalid("phoneNumber is required")
        if grant.three_legged and grant.msisdn != given:
            raise CamaraError(
                403, "INVALID_TOKEN_CONTEXT", "phoneNumber is not consistent with access token."
            )
        return given
    if grant.three_legged:
        if given is not None:
            raise CamaraError(
                422,
                "UNNECESSARY_IDENTIFIER",
                "The device is already identified by the access token.",
            )
        given = grant.msisdn
    if given is None:
        raise CamaraError(422, "MISSING_IDENTIFIER", "The device cannot be identified.")
    return given


def _swap(*, check: bool, vonage: bool) -> Answer:
    async def answer(
        services: Services, grant: Grant, data: dict[str, Any], spend: Spend
    ) -> dict[str, Any]:
        query = wire.parse_swap_query(data, check=check)
        msisdn = _swap_line(grant, query.phone_number, vonage=vonage)
        if not await services.operator.covers(msisdn):
            raise CamaraError(404, "IDENTIFIER_NOT_FOUND", "Device identifier not found.")
        await spend()
        now = datetime.now(UTC)
        at = services.operator.table.swapped_at(msisdn, now)
        if check:
            return {"swapped": at is not None and at >= now - timedelta(hours=query.max_age)}
        if at is None:
            return {"latestSimChange": None, "monitoredPeriod": MONITORED_DAYS}
        stamp = at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return {"latestSimChange": stamp}

    return answer


def setup_routes(app: web.Application) -> None:
    """Register the operator's routes; the app factory calls this only when sandbox is on."""
    router = app.router
    router.add_get(BASE_PATH + "/.well-known/openid-configuration", discovery)
    router.add_get(BASE_PATH + "/oauth2/jwks", jwks)
    router.add_get(BASE_PATH + "/oauth2/auth", authorize)
    router.add_post(BASE_PATH + "/oauth2/bc-authorize", _oauth(_bc_authorize))
    router.add_post(BASE_PATH + "/oauth2/token", _oauth(_token))
    for base in NUMBER_VERIFICATION_PATHS:
        router.add_post(BASE_PATH + base + "/verify", _api(tokens.NV_VERIFY, _verify))
        share = _api(tokens.NV_SHARE, _device_number, body=False)
        router.add_get(BASE_PATH + base + "/device-phone-number", share)
    for base in SIM_SWAP_PATHS:
        vonage = base == VONAGE_SIM_SWAP_PATH
        check = _api(tokens.SS_CHECK, _swap(check=True, vonage=vonage))
        router.add_post(BASE_PATH + base + "/check", check)
        date = _api(tokens.SS_DATE, _swap(check=False, vonage=vonage))
        router.add_post(BASE_PATH + base + "/retrieve-date", date)

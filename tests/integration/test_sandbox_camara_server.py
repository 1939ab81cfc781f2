"""The sandbox operator's CAMARA server, in process: OIDC front channel, CIBA, token endpoint and
the Number Verification / SIM Swap APIs, each response checked against the CAMARA YAMLs.

The app is the real `create_app(Settings(sandbox=True))` on an embedded redis-server; the
operator table is config/sandbox_operator.toml (100.64.0.0/16 → 447700900100, 990… magic
numbers, 447700900118 swapped on 2026-01-01, every 990… number ending in 8 an hour ago).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jsonschema
import jwt
import pytest
import yaml
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from redis.asyncio import Redis

from orchestrator.cli.devredis import EmbeddedRedis
from orchestrator.http.app import create_app
from orchestrator.sandbox import operator_api
from orchestrator.settings import Settings
from orchestrator.tenants import apps

CAMARA = Path(__file__).resolve().parents[3] / "shared" / "reference" / "camara"
PUBLIC = "http://127.0.0.1:8080"
ISSUER = PUBLIC + "/sandbox/operator"
OP = "/sandbox/operator"
CALLBACK = "http://127.0.0.1:9/callback"
NV_SCOPE = "openid dpv:FraudPreventionAndDetection#number-verification-verify-read"
CHECK_SCOPE = "dpv:FraudPreventionAndDetection#check-sim-swap"
DATE_SCOPE = "dpv:FraudPreventionAndDetection#retrieve-sim-swap-date"
ON_MOBILE_DATA = "100.64.0.7"  # → 447700900100 in the operator table
ON_WIFI = "203.0.113.9"  # in no range
FORM = "application/x-www-form-urlencoded"

# ---- the CAMARA YAMLs as JSON Schemas ------------------------------------------------------------


def _load(name: str) -> dict[str, Any]:
    with (CAMARA / name).open() as fh:
        data: dict[str, Any] = yaml.safe_load(fh)
    return data


SPECS = {
    "nv": _load("number-verification.yaml"),
    "ss": _load("sim-swap.yaml"),
    "common": _load("CAMARA_common.yaml"),
}


def _resolve(node: Any, doc: dict[str, Any]) -> Any:
    """`node` with every local `$ref` inlined and OpenAPI 3.0 `nullable` as JSON Schema."""
    if isinstance(node, list):
        return [_resolve(n, doc) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return _resolve(copy.deepcopy(target), doc)
    out = {k: _resolve(v, doc) for k, v in node.items() if k not in ("nullable", "example")}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def _schema_for(spec: str, path: str, status: int, method: str = "post") -> dict[str, Any]:
    doc = SPECS[spec]
    response = doc["paths"][path][method]["responses"][str(status)]
    response = _resolve(response, doc)
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def _common(name: str) -> dict[str, Any]:
    doc = SPECS["common"]
    response = _resolve(doc["components"]["responses"][name], doc)
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def conforms(body: Any, schema: dict[str, Any]) -> None:
    jsonschema.validate(body, schema, format_checker=jsonschema.FormatChecker())


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def client(redis_server: EmbeddedRedis, aiohttp_client: Any) -> TestClient[Any, Any]:
    settings = Settings(sandbox=True, redis_url=redis_server.url, public_url=PUBLIC)
    app = create_app(settings)
    # until the app factory registers the operator itself (one line beside outbox_api's)
    if not any(
        r.resource and r.resource.canonical == OP + "/oauth2/token" for r in app.router.routes()
    ):
        operator_api.setup_routes(app)
    test_client: TestClient[Any, Any] = await aiohttp_client(app)
    return test_client


class App:
    """A Vonage application of the service, minting both kinds of client credentials."""

    def __init__(self, new: apps.NewApplication) -> None:
        self.id = new.app.id
        self.key = new.private_key_pem

    def bearer(self, **claims: Any) -> dict[str, str]:
        now = int(time.time())
        body = {"application_id": self.id, "iat": now, "jti": str(uuid.uuid4()), "exp": now + 900}
        body.update(claims)
        return {"Authorization": "Bearer " + jwt.encode(body, self.key, algorithm="RS256")}

    def assertion(
        self, key: str | None = None, alg: str = "RS256", **claims: Any
    ) -> dict[str, str]:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.id, "sub": self.id, "aud": ISSUER + "/oauth2/token",
            "iat": now, "exp": now + 120, "jti": secrets.token_hex(8),
        }  # fmt: skip
        body.update(claims)
        token = jwt.encode(body, key or self.key, algorithm=alg)
        return {
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token,
        }


@pytest.fixture
async def app(redis_server: EmbeddedRedis) -> AsyncIterator[App]:
    redis: Redis = Redis.from_url(redis_server.url)
    new = await apps.create_app(redis, "camara", "", "2026-01-01T00:00:00.000Z")
    await redis.aclose()
    yield App(new)


def _other_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def magic(last: str) -> str:
    return "990" + f"{random.randrange(10**7):07d}" + last


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# ---- helpers -------------------------------------------------------------------------------------


async def authorize(
    client: TestClient[Any, Any], app: App, device_ip: str = ON_MOBILE_DATA, **params: str
) -> tuple[int, dict[str, list[str]], Any]:
    """GET /oauth2/auth like a handset; the redirect's query (or the 400 body)."""
    query = {"client_id": app.id, "redirect_uri": CALLBACK, "response_type": "code",
             "scope": NV_SCOPE, "state": "st-1", "prompt": "none"}  # fmt: skip
    query.update(params)
    query = {k: v for k, v in query.items() if v != "<omit>"}
    resp = await client.get(
        OP + "/oauth2/auth?" + urlencode(query),
        headers={"X-Sandbox-Device-IP": device_ip},
        allow_redirects=False,
    )
    if resp.status != 302:
        assert "Location" not in resp.headers
        return resp.status, {}, await resp.json()
    location = resp.headers["Location"]
    assert location.startswith(CALLBACK + "?"), location
    return 302, parse_qs(urlsplit(location).query), None


async def token(
    client: TestClient[Any, Any], form: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    resp = await client.post(OP + "/oauth2/token", data=form, headers=headers or {})
    assert resp.headers.get("Cache-Control") == "no-store"
    body: dict[str, Any] = await resp.json()
    if resp.status != 200:
        assert set(body) == {"error", "error_description"}, body
    return resp.status, body


async def nv_token(client: TestClient[Any, Any], app: App, **auth_params: str) -> str:
    verifier, challenge = pkce()
    status, query, _ = await authorize(
        client, app, code_challenge=challenge, code_challenge_method="S256", **auth_params
    )
    assert status == 302 and "code" in query, query
    form = {"grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": CALLBACK, "code_verifier": verifier}  # fmt: skip
    status, body = await token(client, form, app.bearer())
    assert status == 200, body
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 300
    return str(body["access_token"])


async def ciba_token(client: TestClient[Any, Any], app: App, number: str, scope: str) -> str:
    resp = await client.post(
        OP + "/oauth2/bc-authorize",
        data={"login_hint": "tel:+" + number, "scope": scope, **app.assertion()},
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert 0 < body["expires_in"] <= 300 and body["interval"] >= 1
    status, tok = await token(
        client, {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": body["auth_req_id"]},
        app.bearer(),
    )  # fmt: skip
    assert status == 200, tok
    return str(tok["access_token"])


async def call(
    client: TestClient[Any, Any], path: str, access_token: str | None, body: Any,
    correlator: str | None = "corr-1", **kw: Any,
) -> tuple[int, Any]:  # fmt: skip
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    if correlator is not None:
        headers["x-correlator"] = correlator
    headers.update(kw.pop("headers", {}))
    resp = await client.post(OP + path, json=body, headers=headers, **kw)
    data = await resp.json()
    if correlator is not None and resp.status != 400:
        assert resp.headers.get("x-correlator") == correlator
    return resp.status, data


# ---- discovery -----------------------------------------------------------------------------------


async def test_discovery_names_the_endpoints_and_methods(client: TestClient[Any, Any]) -> None:
    resp = await client.get(OP + "/.well-known/openid-configuration")
    doc = await resp.json()
    assert resp.status == 200
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == ISSUER + "/oauth2/auth"
    assert doc["token_endpoint"] == ISSUER + "/oauth2/token"
    assert doc["backchannel_authentication_endpoint"] == ISSUER + "/oauth2/bc-authorize"
    assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert doc["backchannel_token_delivery_modes_supported"] == ["poll"]
    assert {"authorization_code", "urn:openid:params:grant-type:ciba"} <= set(
        doc["grant_types_supported"]
    )
    assert (
        "dpv:FraudPreventionAndDetection#number-verification-verify-read" in doc["scopes_supported"]
    )


async def _id_token_claims(
    client: TestClient[Any, Any], app: App, device_ip: str, **params: str
) -> dict[str, Any] | None:
    status, query, _ = await authorize(client, app, device_ip=device_ip, **params)
    form = {"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": CALLBACK}
    status, body = await token(client, form, app.bearer())
    assert status == 200, body
    if "id_token" not in body:
        return None
    keys = await (await client.get(OP + "/oauth2/jwks")).json()
    (jwk,) = keys["keys"]
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and "d" not in jwk
    assert jwt.get_unverified_header(body["id_token"])["kid"] == jwk["kid"]
    claims: dict[str, Any] = jwt.decode(
        body["id_token"], jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=app.id, issuer=ISSUER
    )
    return claims


async def test_openid_scope_gets_a_pseudonymous_id_token(
    client: TestClient[Any, Any], app: App, redis_server: EmbeddedRedis
) -> None:
    claims = await _id_token_claims(client, app, ON_MOBILE_DATA, nonce="n-0S6_WzA2Mj")
    assert claims is not None
    assert claims["nonce"] == "n-0S6_WzA2Mj" and claims["amr"] == ["nba"]
    assert "447700900100" not in claims["sub"] and claims["exp"] - claims["iat"] <= 300
    again = await _id_token_claims(client, app, ON_MOBILE_DATA)
    assert again is not None and again["sub"] == claims["sub"] and "nonce" not in again
    redis: Redis = Redis.from_url(redis_server.url)
    other = App(await apps.create_app(redis, "other", "", "2026-01-01T00:00:00.000Z"))
    await redis.aclose()
    theirs = await _id_token_claims(client, other, ON_MOBILE_DATA)
    assert theirs is not None and theirs["sub"] != claims["sub"]
    on_wifi = await _id_token_claims(client, app, ON_WIFI)
    assert on_wifi is not None and "amr" not in on_wifi
    scope = "dpv:FraudPreventionAndDetection#number-verification-verify-read"
    assert await _id_token_claims(client, app, ON_MOBILE_DATA, scope=scope) is None


# ---- number verification -------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["/number-verification/vwip", "/camara/number-verification/v031"])
async def test_verify_true_then_the_token_is_spent(
    client: TestClient[Any, Any], app: App, base: str
) -> None:
    access = await nv_token(client, app, login_hint="tel:+447700900100")
    status, body = await call(client, base + "/verify", access, {"phoneNumber": "+447700900100"})
    assert (status, body) == (200, {"devicePhoneNumberVerified": True})
    conforms(body, _schema_for("nv", "/verify", 200))
    status, body = await call(client, base + "/verify", access, {"phoneNumber": "+447700900100"})
    assert status == 401 and body["code"] == "UNAUTHENTICATED"
    conforms(body, _schema_for("nv", "/verify", 401))


async def test_verify_hashed_and_a_different_number(client: TestClient[Any, Any], app: App) -> None:
    hashed = hashlib.sha256(b"+447700900100").hexdigest().upper()
    access = await nv_token(client, app)
    status, body = await call(
        client, "/number-verification/vwip/verify", access, {"hashedPhoneNumber": hashed}
    )
    assert (status, body) == (200, {"devicePhoneNumberVerified": True})
    access = await nv_token(client, app, login_hint="+447700900999")
    status, body = await call(
        client, "/number-verification/vwip/verify", access, {"phoneNumber": "+447700900999"}
    )
    assert (status, body) == (200, {"devicePhoneNumberVerified": False})
    conforms(body, _schema_for("nv", "/verify", 200))


async def test_a_device_on_wifi_is_not_authenticated_by_the_network(
    client: TestClient[Any, Any], app: App
) -> None:
    access = await nv_token(client, app, device_ip=ON_WIFI)
    status, body = await call(
        client, "/number-verification/vwip/verify", access, {"phoneNumber": "+447700900100"}
    )
    assert status == 403
    assert body["code"] == "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK"
    conforms(body, _schema_for("nv", "/verify", 403))


async def test_device_phone_number_with_the_share_scope(
    client: TestClient[Any, Any], app: App
) -> None:
    scope = "openid number-verification:device-phone-number:read"
    access = await nv_token(client, app, scope=scope)
    resp = await client.get(
        OP + "/number-verification/vwip/device-phone-number",
        headers={"Authorization": f"Bearer {access}"},
    )
    body = await resp.json()
    assert (resp.status, body) == (200, {"devicePhoneNumber": "+447700900100"})
    conforms(body, _schema_for("nv", "/device-phone-number", 200, "get"))
    # the verify-read token does not share the number
    access = await nv_token(client, app)
    resp = await client.get(
        OP + "/number-verification/vwip/device-phone-number",
        headers={"Authorization": f"Bearer {access}"},
    )
    body = await resp.json()
    assert resp.status == 403 and body["code"] == "PERMISSION_DENIED"
    conforms(body, _schema_for("nv", "/device-phone-number", 403, "get"))


async def test_magic_numbers_follow_the_virtual_operator(
    client: TestClient[Any, Any], app: App
) -> None:
    even = magic("2")
    access = await nv_token(client, app, device_ip=ON_WIFI, login_hint="tel:+" + even)
    status, body = await call(
        client, "/number-verification/vwip/verify", access, {"phoneNumber": "+" + even}
    )
    assert (status, body) == (200, {"devicePhoneNumberVerified": True})
    status, query, _ = await authorize(client, app, login_hint="+" + magic("3"))
    assert query["error"] == ["access_denied"] and query["state"] == ["st-1"]
    assert "code" not in query
    status, query, _ = await authorize(client, app, login_hint="+" + magic("99"))
    assert query["error"] == ["server_error"] and query["state"] == ["st-1"]


@pytest.mark.parametrize(
    "body",
    [
        {"phoneNumber": "+447700900100", "extra": 1},
        {"phoneNumber": "+447700900100", "hashedPhoneNumber": "a" * 64},
        {},
        {"phoneNumber": "447700900100"},
        {"phoneNumber": 447700900100},
        {"hashedPhoneNumber": "xyz"},
        [],
        "text",
    ],
)
async def test_bad_verify_bodies_are_invalid_argument(
    client: TestClient[Any, Any], app: App, body: Any
) -> None:
    access = await nv_token(client, app)
    status, data = await call(client, "/number-verification/vwip/verify", access, body)
    assert status == 400 and data["code"] == "INVALID_ARGUMENT", data
    conforms(data, _schema_for("nv", "/verify", 400))
    # a rejected body does not spend the token
    status, data = await call(
        client, "/number-verification/vwip/verify", access, {"phoneNumber": "+447700900100"}
    )
    assert status == 200


async def test_api_auth_media_type_and_correlator_errors(
    client: TestClient[Any, Any], app: App
) -> None:
    path = "/number-verification/vwip/verify"
    good = {"phoneNumber": "+447700900100"}
    for access in (None, "x" * 40, "not a token!"):
        status, data = await call(client, path, access, good)
        assert status == 401 and data["code"] == "UNAUTHENTICATED"
        conforms(data, _schema_for("nv", "/verify", 401))
    access = await nv_token(client, app)
    status, data = await call(client, path, access, good, correlator="bad correlator with spaces")
    assert status == 400 and data["code"] == "INVALID_ARGUMENT"
    resp = await client.post(
        OP + path, data=b'{"phoneNumber": "+447700900100"}',
        headers={"Authorization": f"Bearer {access}", "Content-Type": "text/plain"},
    )  # fmt: skip
    data = await resp.json()
    assert resp.status == 415 and data["code"] == "UNSUPPORTED_MEDIA_TYPE"
    conforms(data, _common("Generic415"))
    resp = await client.post(
        OP + path, data=b'{"phoneNumber": ',
        headers={"Authorization": f"Bearer {access}", "Content-Type": "application/json"},
    )  # fmt: skip
    assert resp.status == 400 and (await resp.json())["code"] == "INVALID_ARGUMENT"
    # a SIM swap token is no number verification token
    ss = await ciba_token(client, app, magic("8"), CHECK_SCOPE)
    status, data = await call(client, path, ss, good)
    assert status == 403 and data["code"] == "PERMISSION_DENIED"
    conforms(data, _schema_for("nv", "/verify", 403))


async def test_a_ciba_number_verification_token_is_not_network_authenticated(
    client: TestClient[Any, Any], app: App
) -> None:
    access = await ciba_token(
        client,
        app,
        "447700900100",
        "dpv:FraudPreventionAndDetection#number-verification-verify-read",
    )
    status, data = await call(
        client, "/number-verification/vwip/verify", access, {"phoneNumber": "+447700900100"}
    )
    assert (
        status == 403
        and data["code"] == "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK"
    )


# ---- the front channel's refusals ----------------------------------------------------------------


async def test_authorize_never_redirects_to_an_unknown_client_or_uri(
    client: TestClient[Any, Any], app: App
) -> None:
    status, _, body = await authorize(client, app, client_id=str(uuid.uuid4()))
    assert status == 400 and body["error"] == "invalid_request"
    for uri in ("https://evil.example/cb", "http://127.0.0.1.evil.example/cb", "javascript:x",
                CALLBACK + "#frag", PUBLIC + "/cb\r\nSet-Cookie: x=1", PUBLIC + "/a b", PUBLIC + ".evil.example/cb", "<omit>"):  # fmt: skip
        status, _, body = await authorize(client, app, redirect_uri=uri)
        assert status == 400 and body["error"] == "invalid_request", uri
    # this service's own pages are fine
    resp = await client.get(
        OP + "/oauth2/auth?" + urlencode({"client_id": app.id, "redirect_uri": PUBLIC + "/cb",
                                          "response_type": "code", "scope": NV_SCOPE}),
        allow_redirects=False,
    )  # fmt: skip
    assert resp.status == 302 and resp.headers["Location"].startswith(PUBLIC + "/cb?code=")
    resp = await client.get(OP + "/oauth2/auth?client_id=a&client_id=b", allow_redirects=False)
    assert resp.status == 400


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid"}, "invalid_scope"),
        ({"scope": CHECK_SCOPE}, "invalid_scope"),
        ({"scope": "openid bogus"}, "invalid_scope"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"code_challenge": "a" * 43}, "invalid_request"),
        ({"code_challenge": "a" * 43, "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
        ({"login_hint": "tel:447700900100"}, "invalid_request"),
    ],
)
async def test_authorize_errors_go_back_to_the_client(
    client: TestClient[Any, Any], app: App, params: dict[str, str], error: str
) -> None:
    status, query, _ = await authorize(client, app, **params)
    assert status == 302 and query["error"] == [error] and query["state"] == ["st-1"]
    assert "code" not in query


# ---- the token endpoint --------------------------------------------------------------------------


async def _code(client: TestClient[Any, Any], app: App, challenge: str | None = None) -> str:
    extra = {"code_challenge": challenge, "code_challenge_method": "S256"} if challenge else {}
    _, query, _ = await authorize(client, app, **extra)
    return query["code"][0]


async def test_codes_are_single_use_and_bound(
    client: TestClient[Any, Any], app: App, redis_server: EmbeddedRedis
) -> None:
    form = {"grant_type": "authorization_code", "redirect_uri": CALLBACK}
    code = await _code(client, app)
    assert (await token(client, {**form, "code": code}, app.bearer()))[0] == 200
    status, body = await token(client, {**form, "code": code}, app.bearer())
    assert (status, body["error"]) == (400, "invalid_grant")
    # wrong redirect_uri (and the code is spent by the attempt)
    code = await _code(client, app)
    status, body = await token(
        client, {**form, "code": code, "redirect_uri": CALLBACK + "x"}, app.bearer()
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    assert (await token(client, {**form, "code": code}, app.bearer()))[1][
        "error"
    ] == "invalid_grant"
    # another application's code
    redis: Redis = Redis.from_url(redis_server.url)
    other = App(await apps.create_app(redis, "other", "", "2026-01-01T00:00:00.000Z"))
    await redis.aclose()
    code = await _code(client, app)
    status, body = await token(client, {**form, "code": code}, other.bearer())
    assert (status, body["error"]) == (400, "invalid_grant")
    # PKCE: missing, wrong, and given without a challenge
    verifier, challenge = pkce()
    for bad in ({}, {"code_verifier": pkce()[0]}):
        code = await _code(client, app, challenge)
        status, body = await token(client, {**form, "code": code, **bad}, app.bearer())
        assert (status, body["error"]) == (400, "invalid_grant")
    code = await _code(client, app)
    status, body = await token(
        client, {**form, "code": code, "code_verifier": verifier}, app.bearer()
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    code = await _code(client, app, challenge)
    assert (await token(client, {**form, "code": code, "code_verifier": verifier}, app.bearer()))[
        0
    ] == 200
    status, body = await token(client, {**form, "code": "nonsense"}, app.bearer())
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_private_key_jwt_client_authentication(
    client: TestClient[Any, Any], app: App
) -> None:
    form = {"grant_type": "authorization_code", "redirect_uri": CALLBACK}
    code = await _code(client, app)
    assertion = app.assertion()
    status, body = await token(client, {**form, "code": code, **assertion})
    assert status == 200 and body["access_token"]
    code = await _code(client, app)
    status, body = await token(client, {**form, "code": code, **assertion})  # replayed jti
    assert (status, body["error"]) == (401, "invalid_client")
    now = int(time.time())
    bad_assertions = [
        app.assertion(aud="https://elsewhere.example/token"),
        app.assertion(exp=now + 3600),
        app.assertion(exp=now - 600),
        app.assertion(sub="someone-else"),
        app.assertion(key=_other_key()),
        app.assertion(key="a-shared-secret-long-enough-for-hs256-0123", alg="HS256"),
        app.assertion(jti=None),
        app.assertion(iss=str(uuid.uuid4())),
        {**app.assertion(), "client_id": str(uuid.uuid4())},
        {**app.assertion(), "client_assertion_type": "urn:other"},
        {**app.assertion(), "client_assertion": "not.a.jwt"},
    ]
    for bad in bad_assertions:
        code = await _code(client, app)
        status, body = await token(client, {**form, "code": code, **bad})
        assert (status, body["error"]) == (401, "invalid_client"), bad
    # the issuer is an accepted audience too
    code = await _code(client, app)
    assert (await token(client, {**form, "code": code, **app.assertion(aud=ISSUER)}))[0] == 200


async def test_bearer_application_jwt_client_authentication(
    client: TestClient[Any, Any], app: App
) -> None:
    form = {"grant_type": "authorization_code", "redirect_uri": CALLBACK}
    now = int(time.time())
    jti = str(uuid.uuid4())
    code = await _code(client, app)
    assert (await token(client, {**form, "code": code}, app.bearer(jti=jti)))[0] == 200
    forged = copy.copy(app)
    forged.key = _other_key()
    bad_headers = [
        app.bearer(jti=jti),  # replayed
        app.bearer(iat=now - 2000, exp=now - 1000),  # expired
        forged.bearer(),  # signed with another key
        {"Authorization": "Basic " + base64.b64encode(b"key:secret").decode()},
        {"Authorization": "Bearer "},
        {},
    ]
    for headers in bad_headers:
        code = await _code(client, app)
        status, body = await token(client, {**form, "code": code}, headers)
        assert (status, body["error"]) == (401, "invalid_client"), headers
    code = await _code(client, app)
    status, body = await token(client, {**form, "code": code, **app.assertion()}, app.bearer())
    assert (status, body["error"]) == (400, "invalid_request")


async def test_token_request_shape_errors(client: TestClient[Any, Any], app: App) -> None:
    status, body = await token(client, {"grant_type": "password", "username": "x"}, app.bearer())
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    status, body = await token(client, {"code": "x"}, app.bearer())
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = await token(client, {"grant_type": "authorization_code"}, app.bearer())
    assert (status, body["error"]) == (400, "invalid_request")
    resp = await client.post(
        OP + "/oauth2/token", json={"grant_type": "authorization_code"}, headers=app.bearer()
    )
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_request"
    resp = await client.post(
        OP + "/oauth2/token",
        data="grant_type=a&grant_type=b",
        headers={**app.bearer(), "Content-Type": FORM},
    )
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_request"
    resp = await client.post(
        OP + "/oauth2/token", data=b"\xff\xfe", headers={**app.bearer(), "Content-Type": FORM}
    )
    assert resp.status == 400
    status, body = await token(
        client, {"grant_type": "client_credentials", "scope": NV_SCOPE}, app.bearer()
    )
    assert (status, body["error"]) == (400, "invalid_scope")


# ---- CIBA and SIM swap ---------------------------------------------------------------------------


async def test_ciba_ids_are_single_use_and_for_subscribers_only(
    client: TestClient[Any, Any], app: App
) -> None:
    resp = await client.post(
        OP + "/oauth2/bc-authorize",
        data={"login_hint": "+" + magic("8"), "scope": CHECK_SCOPE},
        headers=app.bearer(),
    )
    ciba = await resp.json()
    assert resp.status == 200
    form = {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": ciba["auth_req_id"]}
    assert (await token(client, form, app.bearer()))[0] == 200
    status, body = await token(client, form, app.bearer())
    assert (status, body["error"]) == (400, "invalid_grant")
    for data, error in (
        ({"login_hint": "+33612345678", "scope": CHECK_SCOPE}, "unknown_user_id"),
        ({"login_hint": "33612345678", "scope": CHECK_SCOPE}, "invalid_request"),
        ({"scope": CHECK_SCOPE}, "invalid_request"),
        ({"login_hint": "+" + magic("8"), "scope": "sim-swap:bogus"}, "invalid_scope"),
    ):
        resp = await client.post(OP + "/oauth2/bc-authorize", data=data, headers=app.bearer())
        assert resp.status == 400 and (await resp.json())["error"] == error, data
    resp = await client.post(
        OP + "/oauth2/bc-authorize", data={"login_hint": "+" + magic("8"), "scope": CHECK_SCOPE}
    )
    assert resp.status == 401 and (await resp.json())["error"] == "invalid_client"


@pytest.mark.parametrize("base", ["/sim-swap/vwip", "/sim-swap/v2"])
async def test_sim_swap_with_a_three_legged_token(
    client: TestClient[Any, Any], app: App, base: str
) -> None:
    swapped = magic("8")
    access = await ciba_token(client, app, swapped, "sim-swap")
    status, body = await call(client, base + "/check", access, {"maxAge": 2})
    assert (status, body) == (200, {"swapped": True})
    conforms(body, _schema_for("ss", "/check", 200))
    status, body = await call(client, base + "/check", access, {})
    assert (status, body) == (200, {"swapped": True})
    status, body = await call(client, base + "/retrieve-date", access, {})
    assert status == 200
    conforms(body, _schema_for("ss", "/retrieve-date", 200))
    changed = datetime.fromisoformat(body["latestSimChange"])
    assert 3500 < time.time() - changed.timestamp() < 3700
    status, body = await call(client, base + "/check", access, {"phoneNumber": "+" + swapped})
    assert status == 422 and body["code"] == "UNNECESSARY_IDENTIFIER"
    conforms(body, _schema_for("ss", "/check", 422))
    # a number nobody swapped
    access = await ciba_token(client, app, magic("2"), "sim-swap")
    status, body = await call(client, base + "/check", access, {"maxAge": 2400})
    assert (status, body) == (200, {"swapped": False})
    status, body = await call(client, base + "/retrieve-date", access, {})
    assert status == 200 and body["latestSimChange"] is None
    conforms(body, _schema_for("ss", "/retrieve-date", 200))


async def test_sim_swap_at_vonages_path_and_the_table(
    client: TestClient[Any, Any], app: App
) -> None:
    base = "/camara/sim-swap/v040"
    access = await ciba_token(client, app, "447700900118", DATE_SCOPE)
    status, body = await call(
        client, base + "/retrieve-date", access, {"phoneNumber": "+447700900118"}
    )
    assert (status, body) == (200, {"latestSimChange": "2026-01-01T00:00:00Z"})
    conforms(body, _schema_for("ss", "/retrieve-date", 200))
    status, body = await call(
        client, base + "/retrieve-date", access, {"phoneNumber": "+447700900100"}
    )
    assert status == 403 and body["code"] == "INVALID_TOKEN_CONTEXT"
    conforms(body, _common("Generic403"))
    status, body = await call(client, base + "/retrieve-date", access, {})
    assert status == 400 and body["code"] == "INVALID_ARGUMENT"
    # the date scope does not check
    status, body = await call(client, base + "/check", access, {"phoneNumber": "+447700900118"})
    assert status == 403 and body["code"] == "PERMISSION_DENIED"
    conforms(body, _schema_for("ss", "/check", 403))
    access = await ciba_token(client, app, "447700900118", CHECK_SCOPE)
    status, body = await call(
        client, base + "/check", access, {"phoneNumber": "+447700900118", "maxAge": 1}
    )
    assert (status, body) == (200, {"swapped": False})


async def test_sim_swap_with_a_two_legged_token(client: TestClient[Any, Any], app: App) -> None:
    status, tok = await token(
        client, {"grant_type": "client_credentials", "scope": "sim-swap:check"}, app.bearer()
    )
    assert status == 200
    access = tok["access_token"]
    status, body = await call(
        client, "/sim-swap/vwip/check", access, {"phoneNumber": "+" + magic("8"), "maxAge": 24}
    )
    assert (status, body) == (200, {"swapped": True})
    status, body = await call(client, "/sim-swap/vwip/check", access, {"maxAge": 24})
    assert status == 422 and body["code"] == "MISSING_IDENTIFIER"
    conforms(body, _schema_for("ss", "/check", 422))
    status, body = await call(
        client, "/sim-swap/vwip/check", access, {"phoneNumber": "+33612345678"}
    )
    assert status == 404 and body["code"] == "IDENTIFIER_NOT_FOUND"
    conforms(body, _schema_for("ss", "/check", 404))


@pytest.mark.parametrize(
    "body",
    [
        {"maxAge": 0},
        {"maxAge": 2401},
        {"maxAge": True},
        {"maxAge": "10"},
        {"maxAge": 1.5},
        {"maxAge": 10, "foo": 1},
        {"phoneNumber": "+1"},
        [],
    ],
)
async def test_bad_sim_swap_bodies_are_invalid_argument(
    client: TestClient[Any, Any], app: App, body: Any
) -> None:
    access = await ciba_token(client, app, magic("8"), CHECK_SCOPE)
    status, data = await call(client, "/sim-swap/vwip/check", access, body)
    assert status == 400 and data["code"] == "INVALID_ARGUMENT", data
    conforms(data, _schema_for("ss", "/check", 400))

"""The JWT attack matrix, beyond what tests/integration/test_vonage_flow.py already refuses
(alg none, HS256 keyed with the public key, expired, replayed jti, unknown application).

Every forged or malformed bearer token is a 401 problem+json, nothing is started, and a refused
token never burns its jti."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.client import TestApp
from tests.support.processes import Stack

PROBLEM = "application/problem+json"
DAY = 24 * 3600


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(app: TestApp, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {
        "application_id": app.application_id,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "exp": now + 900,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def rs256(app: TestApp, headers: dict[str, Any] | None = None, **changes: Any) -> str:
    return jwt.encode(claims(app, **changes), app.private_key, algorithm="RS256", headers=headers)


def stranger_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def tampered_payload(app: TestApp) -> str:
    """A genuine token whose payload was edited afterwards (a later exp), signature kept."""
    head, _, sig = rs256(app).split(".")
    forged = b64url(json.dumps(claims(app, exp=int(time.time()) + 3 * 3600)).encode())
    return f"{head}.{forged}.{sig}"


def tampered_signature(app: TestApp) -> str:
    head, payload, sig = rs256(app).split(".")
    flipped = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    flipped[-1] ^= 0x01
    return f"{head}.{payload}.{b64url(bytes(flipped))}"


def other_alg(app: TestApp, alg: str) -> str:
    """The application's own key, but an algorithm other than the pinned RS256."""
    return jwt.encode(claims(app), app.private_key, algorithm=alg)


def none_variant(app: TestApp, alg: str) -> str:
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{head}.{b64url(json.dumps(claims(app)).encode())}."


def embedded_jwk(app: TestApp) -> str:
    """Signed with the attacker's key, which the header offers as a jwk to verify it with."""
    key = stranger_key()
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return jwt.encode(claims(app), key, algorithm="RS256", headers={"jwk": public, "kid": "x"})


def es256_stranger(app: TestApp) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return jwt.encode(claims(app), pem, algorithm="ES256")


FORGERIES: dict[str, Callable[[TestApp], str]] = {
    "nbf in the future": lambda app: rs256(app, nbf=int(time.time()) + 600),
    "iat in the future": lambda app: rs256(app, iat=int(time.time()) + 600),
    "exp more than 24 h after iat": lambda app: rs256(app, exp=int(time.time()) + DAY + 120),
    "missing jti": lambda app: rs256(app, jti=None),
    "missing iat": lambda app: rs256(app, iat=None),
    "empty jti": lambda app: rs256(app, jti=""),
    "jti of 129 characters": lambda app: rs256(app, jti="j" * 129),
    "numeric jti": lambda app: rs256(app, jti=12345),
    "application_id not a string": lambda app: rs256(app, application_id=12345),
    "missing application_id": lambda app: rs256(app, application_id=None),
    "tampered payload": tampered_payload,
    "tampered signature": tampered_signature,
    "signed with another key": lambda app: jwt.encode(
        claims(app), stranger_key(), algorithm="RS256"
    ),
    "attacker key offered as jwk header": embedded_jwk,
    "ES256 with an attacker key": es256_stranger,
    "RS512 with the right key": lambda app: other_alg(app, "RS512"),
    "PS256 with the right key": lambda app: other_alg(app, "PS256"),
    "alg None": lambda app: none_variant(app, "None"),
    "alg NONE": lambda app: none_variant(app, "NONE"),
    "not a JWT": lambda app: "not.a.jwt",
    "two segments": lambda app: ".".join(rs256(app).split(".")[:2]),
}


def start_with(stack: Stack, authorization: str, to: str) -> requests.Response:
    body = {"brand": "ACME", "workflow": [{"channel": "sms", "to": to}]}
    return requests.post(
        stack.url + "/v2/verify",
        json=body,
        headers={"Authorization": authorization},
        verify=str(stack.cert),
        timeout=10,
    )


def assert_unauthorized(resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 401, resp.text
    assert resp.headers["Content-Type"].startswith(PROBLEM)
    body: dict[str, Any] = resp.json()
    assert body["title"] == "Unauthorized", body
    return body


@pytest.mark.parametrize("name", list(FORGERIES))
def test_forged_or_malformed_token_is_401(
    stack: Stack, app: TestApp, number: str, name: str
) -> None:
    assert_unauthorized(start_with(stack, f"Bearer {FORGERIES[name](app)}", number))
    # nothing was started: the number is free for a genuine start
    assert start_with(stack, f"Bearer {app.token()}", number).status_code == 202


def test_token_of_one_application_cannot_act_on_another_applications_request(
    stack: Stack, make_app: Callable[..., TestApp], number: str
) -> None:
    owner, intruder = make_app(), make_app()
    started = start_with(stack, f"Bearer {owner.token()}", number)
    assert started.status_code == 202, started.text
    rid = started.json()["request_id"]
    for method, path, body in [
        ("POST", f"/v2/verify/{rid}", {"code": "1234"}),
        ("POST", f"/v2/verify/{rid}/next_workflow", None),
        ("DELETE", f"/v2/verify/{rid}", None),
    ]:
        resp = requests.request(
            method,
            stack.url + path,
            json=body,
            headers={"Authorization": f"Bearer {intruder.token()}"},
            verify=str(stack.cert),
            timeout=10,
        )
        assert resp.status_code == 404, (path, resp.text)
    # and the owner's request is untouched
    cancel = requests.delete(
        f"{stack.url}/v2/verify/{rid}",
        headers={"Authorization": f"Bearer {owner.token()}"},
        verify=str(stack.cert),
        timeout=10,
    )
    assert cancel.status_code == 204, cancel.text


def test_refused_token_does_not_burn_its_jti(stack: Stack, app: TestApp, number: str) -> None:
    jti = str(uuid.uuid4())
    forged = jwt.encode(claims(app, jti=jti), stranger_key(), algorithm="RS256")
    assert_unauthorized(start_with(stack, f"Bearer {forged}", number))
    assert start_with(stack, f"Bearer {rs256(app, jti=jti)}", number).status_code == 202


def test_leeway_is_honoured_and_no_more(stack: Stack, app: TestApp, number: str) -> None:
    now = int(time.time())
    # the stack's leeway is the default 30 s: a token expired 5 s ago still passes...
    fresh = rs256(app, iat=now - 600, exp=now - 5)
    assert start_with(stack, f"Bearer {fresh}", number).status_code == 202
    # ... one expired for longer than the leeway does not, and says why
    stale = rs256(app, iat=now - 600, exp=now - 90)
    body = assert_unauthorized(start_with(stack, f"Bearer {stale}", number))
    assert body["type"].endswith("#jwt-expired")


def test_default_lifetime_applies_without_exp(stack: Stack, app: TestApp, number: str) -> None:
    """No exp: the token lives 15 minutes from iat (then it is refused as expired)."""
    now = int(time.time())
    old = rs256(app, iat=now - 16 * 60, exp=None)
    assert_unauthorized(start_with(stack, f"Bearer {old}", number))
    young = rs256(app, iat=now - 60, exp=None)
    assert start_with(stack, f"Bearer {young}", number).status_code == 202

"""Verify Push crypto: the server's checks (orchestrator.factors.push) against what the device
client (verify_device) produces, and against everything a forger could send instead."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from orchestrator.dialects.twilio.factors.common import challenge_resource
from orchestrator.factors import push
from orchestrator.factors.models import Challenge
from verify_device import DeviceKey

ACCOUNT = "AC" + "a" * 32
FACTOR = "YF" + "b" * 32
CREDENTIAL = "CR" + "c" * 32


def spki_b64(key: Any) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def pending_challenge() -> dict[str, Any]:
    challenge = Challenge(
        sid="YC" + "d" * 32,
        account_sid=ACCOUNT,
        service_sid="VA" + "e" * 32,
        entity_sid="YE" + "f" * 32,
        identity="user-00000001",
        factor_sid=FACTOR,
        factor_type="push",
        details={
            "message": "Log in to Acme?",
            "fields": [{"label": "IP", "value": "192.0.2.1"}, {"label": "Amount", "value": "€5"}],
        },
        hidden_details={"transaction_id": "tx-123"},
        expiration_date="2030-01-01T00:05:00.123Z",
        date_created="2030-01-01T00:00:00.456Z",
        date_updated="2030-01-01T00:00:00.456Z",
    )
    return challenge_resource(challenge, "https://verify.example")


# ---- public keys ------------------------------------------------------------------------------


def test_the_device_public_key_is_p256_spki() -> None:
    device = DeviceKey.generate()
    key = push.load_public_key(device.public_key_b64)
    assert isinstance(key.curve, ec.SECP256R1)
    # standard base64 of DER, as Android's Base64.NO_WRAP; url-safe/unpadded forms read too
    der = base64.b64decode(device.public_key_b64, validate=True)
    assert der[0] == 0x30
    urlsafe = base64.urlsafe_b64encode(der).decode().rstrip("=")
    assert push.load_public_key(urlsafe).public_numbers() == key.public_numbers()


@pytest.mark.parametrize(
    "value",
    [
        spki_b64(ec.generate_private_key(ec.SECP384R1())),
        spki_b64(ec.generate_private_key(ec.SECP256K1())),
        spki_b64(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "",
        "not base64!",
        base64.b64encode(b"\x30\x03\x02\x01\x00").decode(),
        base64.b64encode(
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode(),
        "A" * 2000,
    ],
)
def test_other_keys_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        push.load_public_key(value)


# ---- factor verification ------------------------------------------------------------------------


def test_factor_payload_is_a_der_signature_over_the_sid() -> None:
    device = DeviceKey.generate()
    payload = device.factor_payload(FACTOR)
    signature = base64.b64decode(payload, validate=True)
    decode_dss_signature(signature)  # DER, not JOSE R||S
    assert push.verify_factor_payload(device.public_key_b64, FACTOR, payload) is True


def test_factor_payload_refusals() -> None:
    device, other = DeviceKey.generate(), DeviceKey.generate()
    good = device.factor_payload(FACTOR)
    assert push.verify_factor_payload(device.public_key_b64, "YF" + "0" * 32, good) is False
    assert push.verify_factor_payload(other.public_key_b64, FACTOR, good) is False
    assert push.verify_factor_payload(device.public_key_b64, FACTOR, "") is False
    assert push.verify_factor_payload(device.public_key_b64, FACTOR, "%%%") is False
    # a JOSE-encoded (R||S) signature is not what the SDKs send for factor verification
    r, s = decode_dss_signature(base64.b64decode(good))
    jose = base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
    assert push.verify_factor_payload(device.public_key_b64, FACTOR, jose) is False
    # SHA-1 over the same bytes: a different signature scheme
    sha1 = device.private_key.sign(FACTOR.encode(), ec.ECDSA(hashes.SHA1()))  # noqa: S303 - the forgery under test
    assert (
        push.verify_factor_payload(device.public_key_b64, FACTOR, base64.b64encode(sha1).decode())
        is False
    )


# ---- device authentication ----------------------------------------------------------------------


def test_device_jwt_shape_and_check() -> None:
    device = DeviceKey.generate()
    now = time.time()
    token = device.auth_jwt(CREDENTIAL, ACCOUNT, now=now)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "cty": "twilio-pba;v=1", "kid": CREDENTIAL, "typ": "JWT"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {"sub": ACCOUNT, "exp": int(now) + 600, "nbf": int(now)}
    assert len(b64url_decode(token.split(".")[2])) == 64  # JOSE R||S
    assert push.unverified_kid(token) == CREDENTIAL
    assert push.verify_device_token(token, device.public_key_b64, ACCOUNT, leeway=30, now=now)


def test_device_jwt_refusals() -> None:
    device, other = DeviceKey.generate(), DeviceKey.generate()
    now = time.time()
    key = device.public_key_b64

    def ok(token: str) -> bool:
        return push.verify_device_token(token, key, ACCOUNT, leeway=30, now=now)

    assert not ok(other.auth_jwt(CREDENTIAL, ACCOUNT, now=now))  # another key
    assert not ok(device.auth_jwt(CREDENTIAL, "AC" + "0" * 32, now=now))  # another account
    assert not ok(device.auth_jwt(CREDENTIAL, ACCOUNT, now=now - 700))  # expired
    assert not ok(device.auth_jwt(CREDENTIAL, ACCOUNT, now=now + 120))  # not yet valid
    assert not ok(device.auth_jwt(CREDENTIAL, ACCOUNT, now=now, lifetime=7200))  # too long-lived
    # no nbf / no exp
    assert not ok(jwt.encode({"sub": ACCOUNT, "exp": int(now) + 60}, device.private_key, "ES256"))
    assert not ok(jwt.encode({"sub": ACCOUNT, "nbf": int(now)}, device.private_key, "ES256"))
    # algorithm confusion: HS256 keyed with the public key, and "none"
    claims = {"sub": ACCOUNT, "exp": int(now) + 60, "nbf": int(now)}
    forged = (
        base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": CREDENTIAL}).encode())
        .decode()
        .rstrip("=")
        + "."
        + base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        + "."
    )
    assert not ok(forged)
    assert push.unverified_kid(forged) is None
    assert push.unverified_kid("garbage") is None
    # a DER signature in place of R||S
    good = device.auth_jwt(CREDENTIAL, ACCOUNT, now=now)
    head, body, _ = good.split(".")
    der = device.private_key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    assert not ok(f"{head}.{body}." + base64.urlsafe_b64encode(der).decode().rstrip("="))


# ---- challenge approval -------------------------------------------------------------------------


def test_approval_round_trip() -> None:
    device = DeviceKey.generate()
    challenge = pending_challenge()
    for status in ("approved", "denied"):
        token = device.approval_jwt(challenge, push.SIGNATURE_FIELDS, status)
        assert jwt.get_unverified_header(token) == {"alg": "ES256", "typ": "JWT"}
        claims = jwt.decode(token, options={"verify_signature": False})
        assert set(claims) == {*push.SIGNATURE_FIELDS, "status"}
        assert claims["hidden_details"] == {"transaction_id": "tx-123"}
        assert push.verify_approval(token, device.public_key_b64, challenge) == status


def test_the_header_lists_stable_fields() -> None:
    assert push.SIGNATURE_FIELDS_HEADER == "Twilio-Verify-Signature-Fields"
    assert "status" not in push.SIGNATURE_FIELDS  # the device sets it
    assert {"sid", "factor_sid", "details", "hidden_details"} <= set(push.SIGNATURE_FIELDS)


def test_approval_refusals() -> None:
    device, other = DeviceKey.generate(), DeviceKey.generate()
    challenge = pending_challenge()
    key = device.public_key_b64

    def check(token: str, served: dict[str, Any] | None = None) -> str | None:
        return push.verify_approval(token, key, served or challenge)

    # signed by another factor's key
    assert check(other.approval_jwt(challenge, push.SIGNATURE_FIELDS, "approved")) is None
    # a field changed after signing (the server's challenge differs from what was signed)
    good = device.approval_jwt(challenge, push.SIGNATURE_FIELDS, "approved")
    for name, value in [
        ("sid", "YC" + "0" * 32),
        ("hidden_details", {"transaction_id": "tx-999"}),
        ("details", {**challenge["details"], "message": "Pay $1000?"}),
        ("expiration_date", "2031-01-01T00:00:00Z"),
    ]:
        assert check(good, {**challenge, name: value}) is None
    # a signed field left out, a status that is not an answer
    assert check(device.approval_jwt(challenge, push.SIGNATURE_FIELDS[:-1], "approved")) is None
    assert check(device.approval_jwt(challenge, push.SIGNATURE_FIELDS, "expired")) is None
    assert check(device.approval_jwt(challenge, push.SIGNATURE_FIELDS, "pending")) is None
    # the payload tampered with after signing
    head, body, sig = good.split(".")
    claims = json.loads(b64url_decode(body))
    claims["status"] = "denied"
    tampered = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert check(f"{head}.{tampered}.{sig}") is None
    # HS256 keyed with the (public) key text: the algorithm is pinned, so never an HMAC check
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    payload = json.dumps({**push.signed_view(challenge), "status": "approved"}).encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    mac = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert check(f"{head}.{body}." + base64.urlsafe_b64encode(mac).decode().rstrip("=")) is None
    assert check("not.a.jwt") is None
    assert check("") is None

"""Verify Push crypto, as the mobile SDKs speak it (ES256 over P-256):

- `Binding.PublicKey` is the base64 of the device key's SubjectPublicKeyInfo (DER);
- factor verification: `AuthPayload` = base64 of a DER ECDSA-SHA256 signature over the UTF-8
  factor SID;
- device calls: Basic `token:<JWT>` where the JWT's header carries `kid` = the factor's
  `config.credential_sid` and its claims `sub` (the account), `nbf` and `exp`;
- challenge approval: the device echoes the response fields the server named in
  `Twilio-Verify-Signature-Fields`, adds `status` (approved|denied) and signs that as an ES256
  JWT (JOSE R‖S signature), sent as `AuthPayload`.

Every verification pins the algorithm to ES256: a token never chooses how it is checked.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

__all__ = [
    "ALG",
    "APPROVAL_STATUSES",
    "DEVICE_TOKEN_MAX_LIFETIME",
    "SIGNATURE_FIELDS",
    "SIGNATURE_FIELDS_HEADER",
    "load_public_key",
    "signed_view",
    "unverified_kid",
    "verify_approval",
    "verify_device_token",
    "verify_factor_payload",
]

ALG = "ES256"
SIGNATURE_FIELDS_HEADER = "Twilio-Verify-Signature-Fields"
# the challenge response keys the device must sign, in the order the header lists them; none of
# them changes while a challenge is pending
SIGNATURE_FIELDS = (
    "sid",
    "factor_sid",
    "details",
    "hidden_details",
    "expiration_date",
    "date_created",
    "date_updated",
)
APPROVAL_STATUSES = frozenset({"approved", "denied"})
# a device JWT may not claim to live longer than this (the SDK mints 10 minutes)
DEVICE_TOKEN_MAX_LIFETIME = 3600
_PUBLIC_KEY_MAX = 1024


class PushCryptoError(ValueError):
    """A key or signature that is not what Verify Push expects."""


def _b64decode(value: str) -> bytes:
    """Standard base64 (the SDKs' NO_WRAP encoding); url-safe and unpadded input accepted too."""
    cleaned = value.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise PushCryptoError("not base64") from None


def load_public_key(b64_spki: str) -> ec.EllipticCurvePublicKey:
    """The device key from `Binding.PublicKey`: base64 SPKI DER of a P-256 key, nothing else."""
    if not b64_spki or len(b64_spki) > _PUBLIC_KEY_MAX:
        raise PushCryptoError("public key size")
    der = _b64decode(b64_spki)
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError):
        raise PushCryptoError("not a SubjectPublicKeyInfo") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PushCryptoError("not a P-256 key")
    return key


def verify_factor_payload(public_key_b64: str, factor_sid: str, auth_payload: str) -> bool:
    """True when `auth_payload` is base64(DER ECDSA-SHA256 signature over the factor SID)."""
    try:
        key = load_public_key(public_key_b64)
        signature = _b64decode(auth_payload)
    except PushCryptoError:
        return False
    try:
        key.verify(signature, factor_sid.encode(), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def unverified_kid(token: str) -> str | None:
    """The `kid` of a device JWT, read before its signature is checked (to find the factor)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return None
    kid = header.get("kid")
    if header.get("alg") != ALG or not isinstance(kid, str) or not 0 < len(kid) <= 64:
        return None
    return kid


def verify_device_token(
    token: str, public_key_b64: str, account_sid: str, *, leeway: int, now: float
) -> bool:
    """A device's Basic `token:<JWT>`: ES256 by the factor key, `sub` the account, inside its
    `nbf`..`exp` window (± leeway) and no longer-lived than DEVICE_TOKEN_MAX_LIFETIME."""
    try:
        key = load_public_key(public_key_b64)
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALG],
            leeway=leeway,
            options={"require": ["sub", "exp", "nbf"], "verify_aud": False, "verify_iat": False},
        )
    except (jwt.PyJWTError, PushCryptoError):
        return False
    exp, nbf = claims["exp"], claims["nbf"]
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
        return False
    if exp - nbf > DEVICE_TOKEN_MAX_LIFETIME or nbf > now + leeway:
        return False
    return bool(claims["sub"] == account_sid)


def signed_view(resource: dict[str, Any]) -> dict[str, Any]:
    """The signature fields of a challenge resource, normalised as JSON would carry them."""
    view = {name: resource.get(name) for name in SIGNATURE_FIELDS}
    normalised: dict[str, Any] = json.loads(json.dumps(view))
    return normalised


def verify_approval(token: str, public_key_b64: str, resource: dict[str, Any]) -> str | None:
    """The status ("approved"|"denied") a device signed for this challenge, or None when the JWT
    is not ES256 by the factor's key or any signed field differs from the challenge as served."""
    try:
        key = load_public_key(public_key_b64)
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALG:
            return None
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALG],
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except (jwt.PyJWTError, PushCryptoError):
        return None
    status = claims.get("status")
    if status not in APPROVAL_STATUSES:
        return None
    expected = signed_view(resource)
    for name, value in expected.items():
        if name not in claims or claims[name] != value:
            return None
    return str(status)

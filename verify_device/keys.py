"""The device key of a Verify Push factor, and everything the mobile SDKs sign with it.

- `public_key_b64`: base64 SubjectPublicKeyInfo DER of the P-256 key (`Binding.PublicKey`);
- `factor_payload(sid)`: base64 DER ECDSA-SHA256 over the factor SID (factor verification);
- `auth_jwt(...)`: the ES256 JWT of Basic `token:<JWT>` on every call after enrolment, header
  `{"cty": "twilio-pba;v=1", "kid": <credential_sid>, "typ": "JWT", "alg": "ES256"}`, claims
  `{"sub": <account_sid>, "exp": now + 600, "nbf": now}`;
- `approval_jwt(...)`: the ES256 JWT answering a challenge: the fields the server named in
  `Twilio-Verify-Signature-Fields`, copied from the challenge, plus `status`.

ES256 JWT signatures are JOSE R‖S (64 bytes); the factor verification signature is DER.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["AUTH_JWT_LIFETIME", "DeviceKey"]

AUTH_JWT_LIFETIME = 600
_AUTH_CTY = "twilio-pba;v=1"


class DeviceKey:
    """A P-256 key pair held by the device; only the public half ever leaves it."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError("Verify Push keys are P-256")
        self.private_key = private_key

    @classmethod
    def generate(cls) -> DeviceKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: bytes) -> DeviceKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("not an EC private key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_key_b64(self) -> str:
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def sign_der(self, data: bytes) -> str:
        """base64 of the DER ECDSA-SHA256 signature over `data`."""
        signature = self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()

    def factor_payload(self, factor_sid: str) -> str:
        """The AuthPayload that verifies a push factor."""
        return self.sign_der(factor_sid.encode())

    def auth_jwt(
        self,
        credential_sid: str,
        account_sid: str,
        *,
        now: float | None = None,
        lifetime: int = AUTH_JWT_LIFETIME,
    ) -> str:
        issued = int(time.time() if now is None else now)
        return jwt.encode(
            {"sub": account_sid, "exp": issued + lifetime, "nbf": issued},
            self.private_key,
            algorithm="ES256",
            headers={"cty": _AUTH_CTY, "kid": credential_sid, "typ": "JWT"},
        )

    def approval_jwt(self, challenge: Mapping[str, Any], fields: Iterable[str], status: str) -> str:
        """Sign `status` over the named fields of the challenge exactly as it was served."""
        payload = {name: challenge[name] for name in fields}
        payload["status"] = status
        return jwt.encode(payload, self.private_key, algorithm="ES256", headers={"typ": "JWT"})

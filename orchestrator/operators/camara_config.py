"""The configuration of a CAMARA operator (`kind = "camara"` in the operators file), and the
pieces of its credentials that are pure functions: key loading, JWT algorithms, PKCE.

Kept apart from the protocol code (orchestrator/operators/camara.py) so the operators file can
validate a configuration without starting anything. Everything that can be checked at start-up
is: URLs (HTTPS, or HTTP to this machine only), prefixes, the private key (read once, from PEM
text or a file), the credentials the chosen client authentication needs, the CA bundle.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "NUMBER_VERIFICATION_SCOPE",
    "SIM_SWAP_SCOPE",
    "CamaraConfig",
    "CamaraScopes",
    "SigningKey",
    "jwt_algorithm",
    "pkce_challenge",
    "pkce_verifier",
    "safe_url",
    "signing_key",
]

NUMBER_VERIFICATION_SCOPE = "openid dpv:FraudPreventionAndDetection#number-verification-verify-read"
SIM_SWAP_SCOPE = "dpv:FraudPreventionAndDetection#check-sim-swap"
_PREFIX = re.compile(r"[1-9][0-9]{0,14}")

ClientAuth = Literal["private_key_jwt", "client_secret_basic", "client_secret_post", "bearer_jwt"]


def _missing() -> PydanticCustomError:
    # the "missing" type makes the operators file say "missing <key> (in the file or VERIFY_…)"
    return PydanticCustomError("missing", "Field required")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def safe_url(url: str) -> bool:
    """HTTPS, or plain HTTP to this machine (tests, a local stand-in): tokens, codes and client
    secrets never cross a network in clear."""
    parts = urlsplit(url)
    if not parts.hostname or parts.fragment:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname))


SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def signing_key(pem: str) -> SigningKey:
    key = load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("must be an RSA or EC private key")
    return key


def jwt_algorithm(key: SigningKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]


def _read_private_key(value: str) -> str:
    """PEM text as given, or the file it names; ValueError (without the key) if neither loads."""
    text = value.strip()
    if "-----BEGIN" not in text:
        try:
            text = Path(text).expanduser().read_text()
        except (OSError, ValueError):
            raise ValueError("is neither PEM text nor a readable PEM file") from None
    elif "\n" not in text:
        text = text.replace("\\n", "\n")  # an environment variable often escapes the newlines
    try:
        key = signing_key(text)
    except (ValueError, TypeError):
        raise ValueError("is not an unencrypted RSA or EC PEM private key") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size not in (256, 384, 521):
        raise ValueError("EC keys must be on P-256, P-384 or P-521")
    return text


class CamaraScopes(BaseModel):
    """The scopes asked for, per API (purpose-declaring `dpv:` scopes, as operators want)."""

    model_config = ConfigDict(extra="forbid")
    number_verification: str = Field(default=NUMBER_VERIFICATION_SCOPE, min_length=1)
    sim_swap: str = Field(default=SIM_SWAP_SCOPE, min_length=1)


class CamaraConfig(BaseModel):
    """One operator (or aggregator) of the operators file. Either `issuer` (OIDC discovery) or
    the explicit endpoints; an explicit endpoint wins over a discovered one."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["camara"]
    name: str | None = None  # shown to people (Twilio's Carrier=); the table name otherwise
    issuer: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    bc_authorize_url: str | None = None
    number_verification_url: str | None = None  # API root incl. version: POST {root}/verify
    sim_swap_url: str | None = None  # API root incl. version: POST {root}/check
    client_id: str = Field(min_length=1, max_length=256)
    client_auth: ClientAuth = "private_key_jwt"
    # PEM text, or the path of a PEM file: read once, here, so a bad one stops the start
    private_key: SecretStr | None = Field(default=None, validate_default=True)
    key_id: str | None = None
    client_secret: SecretStr | None = Field(default=None, validate_default=True)
    prefixes: list[str] = Field(min_length=1)
    scopes: CamaraScopes = Field(default_factory=CamaraScopes)
    hashed_phone_number: bool = False
    # with a 3-legged (CIBA) token CAMARA says: no phoneNumber. "auto" follows that and retries
    # with it on 422 MISSING_IDENTIFIER or 400 INVALID_ARGUMENT (SIM Swap 0.4, Vonage's v040
    # path, required it); "always" sends it (as Vonage's SDK does); "never" never does
    sim_swap_phone_number: Literal["auto", "always", "never"] = "auto"
    timeout_seconds: float = Field(default=10, gt=0, le=120)
    ca_file: Path | None = None

    @field_validator(
        "issuer",
        "authorize_url",
        "token_url",
        "bc_authorize_url",
        "number_verification_url",
        "sim_swap_url",
    )
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not safe_url(value):
            raise ValueError("must be an https URL (or http to localhost)")
        return value.rstrip("/") if not urlsplit(value).query else value

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        cleaned = [str(p).lstrip("+") for p in value]
        for prefix in cleaned:
            if not _PREFIX.fullmatch(prefix):
                raise ValueError(f"{prefix!r} is not a prefix of E.164 digits")
        return cleaned

    @field_validator("private_key")
    @classmethod
    def _private_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        method = info.data.get("client_auth")
        if value is None:
            if method in ("private_key_jwt", "bearer_jwt"):
                raise _missing()
            return None
        text = _read_private_key(value.get_secret_value())
        if method == "bearer_jwt" and not isinstance(signing_key(text), rsa.RSAPrivateKey):
            raise ValueError("bearer_jwt needs the application's RSA key (RS256)")
        return SecretStr(text)

    @field_validator("client_secret")
    @classmethod
    def _client_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None and info.data.get("client_auth") in (
            "client_secret_basic",
            "client_secret_post",
        ):
            raise _missing()
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                ssl.create_default_context(cafile=str(value))
            except (OSError, ssl.SSLError):
                raise ValueError("is not a readable PEM certificate bundle") from None
        return value

    @model_validator(mode="after")
    def _endpoints(self) -> CamaraConfig:
        if self.number_verification_url is None and self.sim_swap_url is None:
            raise ValueError("give number_verification_url, sim_swap_url or both")
        if self.issuer is None:
            if self.token_url is None:
                raise ValueError("give issuer (discovery) or token_url")
            if self.number_verification_url is not None and self.authorize_url is None:
                raise ValueError("number verification needs issuer (discovery) or authorize_url")
            if self.sim_swap_url is not None and self.bc_authorize_url is None:
                raise ValueError("SIM swap needs issuer (discovery) or bc_authorize_url")
        return self

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What aiohttp verifies the operator's certificate with: the system's trust store,
        or `ca_file`'s bundle (a private CA, the test stack's self-signed certificate)."""
        if self.ca_file is None:
            return True
        return ssl.create_default_context(cafile=str(self.ca_file))


def pkce_verifier(secret: bytes, operator: str, state: str) -> str:
    """RFC 7636's code_verifier for one flow: 43 base64url characters (256 bits) derived from
    the flow's `state`, so the callback recomputes it instead of storing it."""
    mac = hmac.new(secret, b"camara-pkce\0" + operator.encode() + b"\0" + state.encode(), "sha256")
    return _b64url(mac.digest())


def pkce_challenge(verifier: str) -> str:
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

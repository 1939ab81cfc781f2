"""Passkeys (WebAuthn) ceremonies: relying-party config, options, and response verification.

Pure functions over the `webauthn` library and the Factor/Challenge models; no HTTP and no Redis.
`api_passkeys` stores what these return. Every value crossing the wire is base64url (no padding).

A factor's `config` holds its resolved relying party (service settings, overridden by the
factor's own `config`, defaults from the request host), so later ceremonies never depend on
which host the API was called through. Its `binding` holds, while unverified, the registration
challenge and the user handle; once verified, the credential id, COSE public key, sign count and
transports.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import options_to_json_dict
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorAttachment,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from orchestrator.dialects.twilio.forms import Form, invalid
from orchestrator.factors.models import Factor

__all__ = [
    "ATTACHMENTS",
    "CHALLENGE_TTL_SECONDS",
    "REGISTRATION_TTL_SECONDS",
    "REQUIREMENTS",
    "CeremonyFailed",
    "ConfigError",
    "Credential",
    "apply_service_params",
    "authentication_options",
    "b64url",
    "client_challenge",
    "credential_id_of",
    "registration_options",
    "resolve_config",
    "unb64url",
    "verify_assertion",
    "verify_registration",
]

# registration options live as long as Twilio's `timeout` (600000 ms); challenges 5 minutes
REGISTRATION_TTL_SECONDS = 600
CHALLENGE_TTL_SECONDS = 300
ATTACHMENTS = ("platform", "cross-platform", "any")
REQUIREMENTS = ("required", "preferred", "discouraged")
# Twilio's documented example values are the defaults when neither service nor factor says
_DEFAULT_ATTACHMENT = "platform"
_DEFAULT_REQUIREMENT = "preferred"
_MAX_ORIGINS = 10
_DOMAIN = re.compile(
    r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
_IPV4 = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}")
# Android apps assert `android:apk-key-hash:<base64url sha256 of the signing cert>`
_ANDROID_ORIGIN = re.compile(r"android:apk-key-hash:[A-Za-z0-9_-]{20,100}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
# what a malformed WebAuthn response can make the parsing layers raise, besides WebAuthnException
_MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, IndexError, OverflowError)


class ConfigError(Exception):
    """A relying-party parameter is invalid; `param` names it as the API spells it."""

    def __init__(self, param: str) -> None:
        super().__init__(param)
        self.param = param


class CeremonyFailed(Exception):
    """The authenticator's response did not verify (origin, RP, challenge, signature, count)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(value: str) -> bytes:
    """Strict base64url (padding optional); ValueError for anything else."""
    if not isinstance(value, str) or not _B64URL.fullmatch(value):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))


# ---- relying-party configuration ---------------------------------------------------------------


def _valid_rp_id(value: str) -> bool:
    return bool(_DOMAIN.fullmatch(value)) or bool(_IPV4.fullmatch(value))


def _origin_host(origin: str) -> str | None:
    """The host of an http(s) origin (scheme://host[:port], nothing after), else None."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        return None
    if port is not None and not 0 < port < 65536:
        return None
    return parts.hostname


def _valid_origin(origin: str) -> bool:
    return _origin_host(origin) is not None or bool(_ANDROID_ORIGIN.fullmatch(origin))


def _origin_matches_rp(origin: str, rp_id: str) -> bool:
    """WebAuthn: the RP ID must be the origin's host or a registrable suffix of it."""
    host = _origin_host(origin)
    if host is None:
        return True  # app origins (android:apk-key-hash:…) are not host-scoped
    return host == rp_id or host.endswith("." + rp_id)


def split_origins(values: list[str]) -> list[str]:
    """Origins arrive comma-separated (Twilio's form) and/or as a repeated parameter."""
    return [o.strip() for v in values for o in v.split(",") if o.strip()]


def apply_service_params(passkeys: dict[str, Any], form: Form) -> None:
    """`Passkeys.*` service parameters into the service's `passkeys` dict. An empty value clears."""
    rp: dict[str, Any] = dict(passkeys.get("relying_party") or {})
    rp_id_param = "Passkeys.RelyingParty.Id"
    if form.has(rp_id_param):
        rp_id = form.text(rp_id_param, max_len=253)
        if rp_id is not None and not _valid_rp_id(rp_id.lower()):
            raise invalid(rp_id_param)
        rp["id"] = rp_id.lower() if rp_id else None
    name_param = "Passkeys.RelyingParty.Name"
    if form.has(name_param):
        rp["name"] = form.text(name_param, max_len=64)
    origins_param = "Passkeys.RelyingParty.Origins"
    if form.has(origins_param):
        first = form.text(origins_param, max_len=2048)
        raw = [] if first is None else form.texts(origins_param, max_len=2048)
        origins = list(dict.fromkeys(split_origins(raw)))
        if len(origins) > _MAX_ORIGINS or not all(_valid_origin(o) for o in origins):
            raise invalid(origins_param)
        rp["origins"] = origins
    passkeys["relying_party"] = {
        "id": rp.get("id"),
        "name": rp.get("name"),
        "origins": list(rp.get("origins") or []),
    }
    for param, key, allowed in [
        ("Passkeys.AuthenticatorAttachment", "authenticator_attachment", ATTACHMENTS),
        ("Passkeys.DiscoverableCredentials", "discoverable_credentials", REQUIREMENTS),
        ("Passkeys.UserVerification", "user_verification", REQUIREMENTS),
    ]:
        if form.has(param):
            value = form.text(param, max_len=16)
            if value is not None and value not in allowed:
                raise invalid(param)
            passkeys[key] = value


def _pick(requested: dict[str, Any], service: dict[str, Any], key: str) -> Any:
    value = requested.get(key)
    return value if value not in (None, "", []) else service.get(key)


def resolve_config(
    requested: Any,
    service_passkeys: dict[str, Any],
    *,
    request_origin: str,
    default_name: str,
) -> dict[str, Any]:
    """A factor's effective config: its own `config`, else the service's, else defaults.

    The RP ID defaults to the request's host; origins default to the request's origin when the
    RP ID also defaulted, else to `https://<rp id>`.
    """
    if requested is None:
        requested = {}
    if not isinstance(requested, dict):
        raise ConfigError("config")
    req_rp = requested.get("relying_party")
    if req_rp is None:
        req_rp = {}
    if not isinstance(req_rp, dict):
        raise ConfigError("config.relying_party")
    svc_rp = service_passkeys.get("relying_party") or {}

    rp_id = _pick(req_rp, svc_rp, "id")
    request_host = _origin_host(request_origin) or "localhost"
    if rp_id is None:
        rp_id = request_host
    if not isinstance(rp_id, str) or not _valid_rp_id(rp_id.lower()):
        raise ConfigError("config.relying_party.id")
    rp_id = rp_id.lower()

    name = _pick(req_rp, svc_rp, "name") or default_name or rp_id
    if not isinstance(name, str) or len(name) > 64:
        raise ConfigError("config.relying_party.name")

    origins = _pick(req_rp, svc_rp, "origins")
    if isinstance(origins, str):
        origins = split_origins([origins])
    if not origins:
        origins = [request_origin if rp_id == request_host else f"https://{rp_id}"]
    if (
        not isinstance(origins, list)
        or not 0 < len(origins) <= _MAX_ORIGINS
        or not all(isinstance(o, str) and _valid_origin(o) for o in origins)
        or not all(_origin_matches_rp(o, rp_id) for o in origins)
    ):
        raise ConfigError("config.relying_party.origins")

    resolved: dict[str, Any] = {
        "relying_party": {"id": rp_id, "name": name, "origins": list(dict.fromkeys(origins))}
    }
    for key, allowed, default in [
        ("authenticator_attachment", ATTACHMENTS, _DEFAULT_ATTACHMENT),
        ("discoverable_credentials", REQUIREMENTS, _DEFAULT_REQUIREMENT),
        ("user_verification", REQUIREMENTS, _DEFAULT_REQUIREMENT),
    ]:
        value = _pick(requested, service_passkeys, key) or default
        if value not in allowed:
            raise ConfigError(f"config.{key}")
        resolved[key] = value
    return resolved


# ---- registration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    """A registered credential as kept in `factor.binding`."""

    credential_id: str  # base64url
    public_key: str  # base64url COSE_Key
    sign_count: int
    transports: list[str]

    @classmethod
    def of(cls, factor: Factor) -> Credential | None:
        b = factor.binding
        if factor.status != "verified" or "credential_id" not in b:
            return None
        return cls(
            credential_id=str(b["credential_id"]),
            public_key=str(b["public_key"]),
            sign_count=int(b.get("sign_count", 0)),
            transports=[str(t) for t in b.get("transports", [])],
        )

    def descriptor(self) -> PublicKeyCredentialDescriptor:
        transports = []
        for t in self.transports:
            try:
                transports.append(AuthenticatorTransport(t))
            except ValueError:
                continue
        return PublicKeyCredentialDescriptor(
            id=unb64url(self.credential_id), transports=transports or None
        )


def _uv(value: str) -> UserVerificationRequirement:
    return UserVerificationRequirement(value)


def registration_options(
    factor: Factor, user_handle: bytes, exclude: list[Credential]
) -> tuple[str, dict[str, Any]]:
    """(challenge, PublicKeyCredentialCreationOptions as JSON) for `navigator.credentials.create`."""
    config = factor.config
    rp = config["relying_party"]
    attachment = config["authenticator_attachment"]
    selection = AuthenticatorSelectionCriteria(
        authenticator_attachment=None
        if attachment == "any"
        else AuthenticatorAttachment(attachment),
        resident_key=ResidentKeyRequirement(config["discoverable_credentials"]),
        user_verification=_uv(config["user_verification"]),
    )
    challenge = secrets.token_bytes(32)
    options = generate_registration_options(
        rp_id=rp["id"],
        rp_name=rp["name"],
        user_id=user_handle,
        user_name=factor.friendly_name,
        user_display_name=factor.friendly_name,
        challenge=challenge,
        timeout=REGISTRATION_TTL_SECONDS * 1000,
        authenticator_selection=selection,
        exclude_credentials=[c.descriptor() for c in exclude],
    )
    return b64url(challenge), options_to_json_dict(options)


def client_challenge(credential: dict[str, Any]) -> str:
    """The challenge inside `response.clientDataJSON`, canonical base64url; ValueError if absent."""
    response = credential.get("response")
    if not isinstance(response, dict):
        raise ValueError("response")
    raw = response.get("clientDataJSON")
    if not isinstance(raw, str) or len(raw) > 8192:
        raise ValueError("response.clientDataJSON")
    try:
        client_data = json.loads(unb64url(raw))
    except (ValueError, RecursionError):
        raise ValueError("response.clientDataJSON") from None
    if not isinstance(client_data, dict) or not isinstance(client_data.get("challenge"), str):
        raise ValueError("response.clientDataJSON")
    return b64url(unb64url(client_data["challenge"]))


def credential_id_of(credential: dict[str, Any]) -> str:
    """`rawId` (base64url, equal to `id`), canonical; ValueError otherwise."""
    raw_id, cred_id = credential.get("rawId"), credential.get("id")
    if not isinstance(raw_id, str) or not isinstance(cred_id, str) or len(raw_id) > 1400:
        raise ValueError("rawId")
    canonical = b64url(unb64url(raw_id))
    if b64url(unb64url(cred_id)) != canonical:
        raise ValueError("id")
    return canonical


def verify_registration(factor: Factor, credential: dict[str, Any]) -> dict[str, Any]:
    """Check an attestation against the factor's pending registration; the verified binding."""
    config = factor.config
    rp = config["relying_party"]
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=unb64url(str(factor.binding.get("challenge", ""))),
            expected_rp_id=rp["id"],
            expected_origin=list(rp["origins"]),
            require_user_verification=config["user_verification"] == "required",
        )
    except _MALFORMED as exc:
        raise CeremonyFailed(str(exc)) from None
    try:
        claimed = credential_id_of(credential)
    except ValueError:
        raise CeremonyFailed("malformed rawId") from None
    if b64url(verified.credential_id) != claimed:
        raise CeremonyFailed("rawId is not the attested credential id")
    response = credential.get("response") or {}
    transports = response.get("transports") if isinstance(response, dict) else None
    return {
        "credential_id": b64url(verified.credential_id),
        "public_key": b64url(verified.credential_public_key),
        "sign_count": verified.sign_count,
        "transports": [
            t for t in (transports if isinstance(transports, list) else []) if isinstance(t, str)
        ][:8],
        "aaguid": verified.aaguid,
        "user_handle": factor.binding.get("user_handle"),
        "backed_up": verified.credential_backed_up,
    }


# ---- authentication ------------------------------------------------------------------------------


def authentication_options(
    rp_id: str, allow: list[Credential], user_verification: str
) -> tuple[str, dict[str, Any]]:
    """(challenge, PublicKeyCredentialRequestOptions as JSON) for `navigator.credentials.get`."""
    challenge = secrets.token_bytes(32)
    options = generate_authentication_options(
        rp_id=rp_id,
        challenge=challenge,
        timeout=CHALLENGE_TTL_SECONDS * 1000,
        allow_credentials=[c.descriptor() for c in allow],
        user_verification=_uv(user_verification),
    )
    return b64url(challenge), options_to_json_dict(options)


def verify_assertion(
    factor: Factor, credential: dict[str, Any], challenge: str, stored: Credential
) -> int:
    """Check an assertion signed by the factor's credential for `challenge`; the new sign count.

    The library refuses a sign count that did not grow (a cloned or replayed authenticator) unless
    both counts are zero, as with authenticators that keep no counter.
    """
    config = factor.config
    rp = config["relying_party"]
    response = credential.get("response")
    if isinstance(response, dict) and response.get("userHandle") not in (None, ""):
        # a discoverable credential names its user: it must be this factor's
        user_handle = response["userHandle"]
        try:
            handle = b64url(unb64url(user_handle)) if isinstance(user_handle, str) else None
        except ValueError:
            handle = None
        if handle is None or handle != factor.binding.get("user_handle"):
            raise CeremonyFailed("userHandle does not belong to the credential")
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=unb64url(challenge),
            expected_rp_id=rp["id"],
            expected_origin=list(rp["origins"]),
            credential_public_key=unb64url(stored.public_key),
            credential_current_sign_count=stored.sign_count,
            require_user_verification=config["user_verification"] == "required",
        )
    except _MALFORMED as exc:
        raise CeremonyFailed(str(exc)) from None
    return verified.new_sign_count

"""Entities, factors and challenges. An entity holds only an opaque identity: no PII."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "Challenge",
    "ChallengeStatus",
    "Entity",
    "Factor",
    "FactorStatus",
    "FactorType",
    "Record",
]

FactorType = Literal["push", "totp", "passkeys"]
FactorStatus = Literal["unverified", "verified"]
ChallengeStatus = Literal["pending", "expired", "approved", "denied"]


class Record(BaseModel):
    """Stored with a version, bumped on every compare-and-set update."""

    version: int = 0


class Entity(Record):
    sid: str
    identity: str
    account_sid: str
    service_sid: str
    date_created: str
    date_updated: str


class Factor(Record):
    sid: str
    account_sid: str
    service_sid: str
    entity_sid: str
    identity: str
    friendly_name: str
    factor_type: FactorType
    status: FactorStatus = "unverified"
    # what the API shows as `config` (push: sdk_version, app_id, notification_*; totp: alg, ...)
    config: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    # server-side secrets and keys, never shown after create: push public key (b64 SPKI DER),
    # TOTP secret (sealed), passkey credential id and public key
    binding: dict[str, Any] = Field(default_factory=dict)
    # wrong verification attempts (factor verification), and TOTP replay protection
    attempts: int = 0
    last_used_step: int = -1
    date_created: str
    date_updated: str


class Challenge(Record):
    sid: str
    account_sid: str
    service_sid: str
    entity_sid: str
    identity: str
    factor_sid: str
    factor_type: FactorType
    status: ChallengeStatus = "pending"
    responded_reason: Literal["none", "not_needed", "not_requested"] = "none"
    details: dict[str, Any] = Field(default_factory=dict)
    hidden_details: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    expiration_date: str
    date_created: str
    date_updated: str
    date_responded: str | None = None
    attempts: int = 0
    # passkeys: the WebAuthn challenge bytes (base64url) the authenticator must sign
    webauthn_challenge: str | None = None

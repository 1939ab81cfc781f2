"""Verification and step models: the whole state of one verification, serializable as JSON."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["Channel", "Rules", "Status", "Step", "StepStatus", "Verification"]


class Channel(StrEnum):
    SILENT_AUTH = "silent_auth"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    VOICE = "voice"
    EMAIL = "email"


class StepStatus(StrEnum):
    UNUSED = "unused"
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    USER_REJECTED = "user_rejected"


class Status(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Step(BaseModel):
    """One entry of the workflow: a channel, its destination and what it was told to do."""

    channel: Channel
    to: str
    sender: str | None = None
    reuse_code: bool = False
    # channel-specific options kept verbatim (redirect_url, coverage_check, mode, app_hash, ...)
    options: dict[str, Any] = Field(default_factory=dict)
    status: StepStatus = StepStatus.UNUSED
    initiated_at: datetime | None = None
    finalized_at: datetime | None = None
    # why a failed step failed, short and machine-friendly ("sim_swap", "not_on_mobile_network",
    # "twilio-us: undelivered (30003)"); webhooks carry it
    reason: str | None = None


class Rules(BaseModel):
    """Where the dialects' products behave differently; the defaults are Vonage's."""

    # wrong codes allowed before the verification is over
    max_checks: int = 3
    # False (Vonage): the last allowed wrong code ends the verification (410);
    # True (Twilio): wrong codes stay "pending" and only the check after the limit is refused
    refuse_after_max: bool = False
    # sends per verification (Twilio resends to the same destination reuse the verification)
    max_sends: int = 3
    # whether each code step times out after channel_timeout (silent auth always does)
    step_timeouts: bool = True
    # seconds until the whole verification expires, whatever step it is on
    lifetime: int | None = None
    # every send of the verification carries the same code
    keep_code: bool = False
    # a cancelled verification still reports its end (Twilio's verification.canceled)
    report_cancel: bool = False
    # a failed silent-auth attempt with no step after it leaves the verification pending
    # (Twilio: checks answer "pending", a resend may try again, the lifetime ends it)
    pending_after_silent_failure: bool = False
    # SMS, WhatsApp and voice steps send no code to a number whose SIM changed within this many
    # hours (the application's or service's setting); None: no SIM-swap check
    sim_swap_max_age_hours: int | None = None


class Verification(BaseModel):
    """One attempt to prove possession of a destination, with its ordered workflow."""

    request_id: str
    tenant: str
    brand: str
    locale: str
    channel_timeout: int
    code_length: int
    client_ref: str | None = None
    steps: list[Step]
    current: int = -1
    status: Status = Status.PENDING
    created_at: datetime
    finished_at: datetime | None = None
    # keyed hashes of every code issued so far; any of them verifies while the request is pending
    code_hashes: list[str] = Field(default_factory=list)
    # the code sealed (encrypted), kept only while a later step must send the same code again
    sealed_code: str | None = None
    custom_code: str | None = None
    wrong_attempts: int = 0
    # silent auth: the session behind the check URL, and whether the device has got its code
    sa_session: str | None = None
    sa_code_issued: bool = False
    sa_code_hash: str | None = None
    # whether outcomes go out as webhooks (Vonage: only for JWT-authenticated starts)
    notify: bool = False
    # how many webhook messages this verification has emitted; makes message ids deterministic
    emitted: int = 0
    # the dialect the verification was started through (wire shapes of its webhooks)
    dialect: str = "vonage"
    rules: Rules = Field(default_factory=Rules)
    # the account the tenant belongs to (sandbox outbox scope); Twilio: the service's parent
    account: str = ""
    # silent auth: the operator confirmed the device is on the number (Twilio checks need no code)
    sa_verified: bool = False
    # why each failed silent-auth attempt failed, in order (Twilio: sna_attempts_error_codes)
    sa_failures: list[str] = Field(default_factory=list)
    # dialect-specific data kept verbatim (Twilio: amount, payee, lookup, attempt sids, ...)
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def step(self) -> Step | None:
        """The step in progress, if any."""
        return self.steps[self.current] if 0 <= self.current < len(self.steps) else None

    def destinations(self) -> list[str]:
        """Distinct destinations of the workflow, in order; each may have one pending request."""
        seen: list[str] = []
        for step in self.steps:
            if step.to not in seen:
                seen.append(step.to)
        return seen

"""What can happen to a verification: the inputs of `transition()`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orchestrator.domain.models import Step

__all__ = [
    "Approve",
    "Cancel",
    "CodeSubmitted",
    "DeliveryFailed",
    "DeviceResult",
    "Event",
    "NextWorkflow",
    "Resend",
    "SilentCheck",
    "StepTimedOut",
]

# StepTimedOut for this "step" means the whole verification's lifetime is over
WHOLE_VERIFICATION = -1


@dataclass(frozen=True)
class CodeSubmitted:
    """A code was checked; the caller passes its keyed hash, never the code itself."""

    code_hash: str


@dataclass(frozen=True)
class NextWorkflow:
    """The client asked to move on to the next step now."""


@dataclass(frozen=True)
class Cancel:
    """The client cancelled the verification."""


@dataclass(frozen=True)
class StepTimedOut:
    step: int


@dataclass(frozen=True)
class DeliveryFailed:
    step: int
    reason: str


@dataclass(frozen=True)
class DeviceResult:
    """The operator's answer for the device that opened the silent-auth check URL."""

    step: int
    outcome: Literal["completed", "failed", "user_rejected"]
    reason: str = ""


@dataclass(frozen=True)
class Resend:
    """Send again, possibly on another channel (Twilio: a new start for a pending destination)."""

    step: Step


@dataclass(frozen=True)
class Approve:
    """The client declared the verification approved (Twilio: update Status=approved)."""


@dataclass(frozen=True)
class SilentCheck:
    """A check without a code: passes once the operator confirmed the device (Twilio sna)."""


Event = (
    CodeSubmitted
    | NextWorkflow
    | Cancel
    | StepTimedOut
    | DeliveryFailed
    | DeviceResult
    | Resend
    | Approve
    | SilentCheck
)

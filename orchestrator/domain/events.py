"""What can happen to a verification: the inputs of `transition()`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Cancel",
    "CodeSubmitted",
    "DeliveryFailed",
    "DeviceResult",
    "Event",
    "NextWorkflow",
    "StepTimedOut",
]


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


Event = CodeSubmitted | NextWorkflow | Cancel | StepTimedOut | DeliveryFailed | DeviceResult

"""What a transition asks the outside world to do; the store commits these with the new state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = ["CancelTimeout", "Effect", "Emit", "ReleaseDestinations", "ScheduleTimeout", "SendStep"]


@dataclass(frozen=True)
class SendStep:
    """Deliver step `step`; `sealed_code` is the code encrypted for the sender, or None."""

    step: int
    sealed_code: str | None


@dataclass(frozen=True)
class ScheduleTimeout:
    step: int
    at: datetime


@dataclass(frozen=True)
class CancelTimeout:
    step: int


@dataclass(frozen=True)
class Emit:
    """A webhook: an `event` about one step, or the once-only `summary`."""

    kind: Literal["event", "summary"]
    step: int | None
    status: str
    at: datetime
    seq: int


@dataclass(frozen=True)
class ReleaseDestinations:
    """The verification is over: its destinations may start a new one."""


Effect = SendStep | ScheduleTimeout | CancelTimeout | Emit | ReleaseDestinations

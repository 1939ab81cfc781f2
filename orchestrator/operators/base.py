"""The operator interface a sandbox, a CAMARA Number Verification adapter or an aggregator implements.

The flow it abstracts is CAMARA's front-channel one: the device is redirected to the operator's
authorize URL over mobile data, the operator recognises the line by its network session and
redirects back with a one-time authorization code, and the backend exchanges that code for the
verdict "is this device on number N?".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

__all__ = ["DeviceOutcome", "Operator"]


@dataclass(frozen=True)
class DeviceOutcome:
    outcome: Literal["completed", "failed", "user_rejected"]
    reason: str = ""


class Operator(ABC):
    """One network (or aggregator) able to verify device numbers silently."""

    name: str

    @abstractmethod
    async def covers(self, msisdn: str) -> bool:
        """Whether the number is on a network this operator can check (the 412 pre-check)."""

    @abstractmethod
    def authorize_url(self, *, msisdn: str, state: str, redirect_uri: str) -> str:
        """Where the device goes next: the operator's authorize endpoint (first hop)."""

    @abstractmethod
    async def exchange(self, code: str, msisdn: str) -> DeviceOutcome:
        """Redeem the one-time code the operator returned; tell whether the device is on `msisdn`."""

"""The operator interface a sandbox, a CAMARA Number Verification adapter or an aggregator implements.

The flow it abstracts is CAMARA's front-channel one: the device is redirected to the operator's
authorize URL over mobile data, the operator recognises the line by its network session and
redirects back with a one-time authorization code, and the backend exchanges that code for the
verdict "is this device on number N?". SIM Swap is the back-channel question "did the SIM of N
change within the last H hours?", asked before a code is sent to N.

Failures of the device flow are outcomes, never exceptions: the web request that carries the
device's callback must settle the step (and fall back to the next channel) whatever the operator
did. Their reasons are short machine-friendly texts a webhook can carry, e.g.
"not_on_mobile_network", "number_mismatch", "operator_error: 503", "timeout".
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

__all__ = ["DeviceOutcome", "Operator", "OperatorUnavailable", "oauth_error_outcome"]

# an OAuth error code is %x20-21 / %x23-5B / %x5D-7E (RFC 6749 §4.1.2.1); we keep a tamer subset
_OAUTH_ERROR = re.compile(r"[a-z0-9_.:-]{1,64}", re.IGNORECASE)


@dataclass(frozen=True)
class DeviceOutcome:
    outcome: Literal["completed", "failed", "user_rejected"]
    reason: str = ""


class OperatorUnavailable(Exception):
    """The operator could not answer (down, slow, refused us, spoke no CAMARA). `reason` is the
    same kind of short text as a DeviceOutcome's, and never holds a token, code or secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def oauth_error_outcome(error: str) -> DeviceOutcome:
    """The failed outcome for an OAuth error code (authorize redirect or token endpoint).

    With `prompt=none` nobody was asked for a login, so `login_required` means the network did
    not recognise the device (Wi-Fi, VPN, another operator); `access_denied` is the subscriber
    (or the operator on their behalf) declining, Vonage's `user_rejected`; everything else fails
    with its own code. The operator's free-text description is not carried: it is not
    machine-friendly and may echo input."""
    code = error.strip()
    if code == "login_required":
        return DeviceOutcome("failed", "not_on_mobile_network")
    if code == "access_denied":
        return DeviceOutcome("user_rejected", "oauth_error: access_denied")
    if not _OAUTH_ERROR.fullmatch(code):
        return DeviceOutcome("failed", "oauth_error")
    return DeviceOutcome("failed", f"oauth_error: {code}")


class Operator(ABC):
    """One network (or aggregator) able to verify device numbers silently."""

    name: str

    async def start(self) -> None:  # noqa: B027 (optional, not abstract)
        """Warm up (e.g. OIDC discovery) so a misconfiguration shows at start-up. Optional: the
        operator also does it lazily. Raises OperatorUnavailable when it can't."""

    @abstractmethod
    async def covers(self, msisdn: str) -> bool:
        """Whether the number is on a network this operator can check (the 412 pre-check)."""

    @abstractmethod
    async def authorize_url(self, *, msisdn: str, state: str, redirect_uri: str) -> str:
        """Where the device goes next: the operator's authorize endpoint (first hop). Async
        because the endpoint may come from discovery; raises OperatorUnavailable when it can't
        be known (the caller fails the step with `exc.reason`)."""

    @abstractmethod
    async def exchange(
        self, code: str, msisdn: str, *, state: str, redirect_uri: str
    ) -> DeviceOutcome:
        """Redeem the one-time code the operator returned to the callback; tell whether the
        device is on `msisdn`. `state` and `redirect_uri` are the first hop's (PKCE's verifier
        derives from the state; OAuth wants the same redirect_uri again). Never raises: every
        failure is a failed outcome with a reason."""

    def outcome_for_error(self, error: str, description: str = "") -> DeviceOutcome:
        """The callback got `error=…` (and maybe `error_description`) instead of a code."""
        return oauth_error_outcome(error)

    @abstractmethod
    async def sim_swapped(self, msisdn: str, max_age_hours: int) -> bool:
        """Whether the SIM of `msisdn` (E.164 digits) changed within the last `max_age_hours`
        (1..2400, CAMARA's range). Raises OperatorUnavailable when the operator can't answer."""

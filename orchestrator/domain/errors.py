"""The one exception tree; each dialect maps it to its own status codes and error bodies.

DomainError
├── NotFound            unknown, finished or foreign verification
├── Conflict
│   ├── DestinationBusy     another verification is pending for the same destination
│   ├── CodelessStep        a code was checked while the step has none
│   ├── NoMoreSteps         next_workflow with no step left
│   └── SessionUsed         a silent-auth check URL opened twice
├── InvalidCode         wrong code, attempts remain
├── TooManyAttempts     wrong code, the verification is over
├── NotCovered          silent auth cannot reach the number's network
├── SilentAuthFailed    the device result was negative
├── RateLimited         a send or check limit was hit
│   ├── MaxSendsReached     no send left on this verification
│   └── Throttled           a per-destination/per-IP send window or a Basic-auth lockout
├── Blocked             the fraud guard refused a send (geo permissions or the prefix budget)
└── InvalidParameters   the request failed validation (carries name/reason pairs)
"""

from __future__ import annotations

__all__ = [
    "Blocked",
    "CodelessStep",
    "Conflict",
    "DestinationBusy",
    "DomainError",
    "InvalidCode",
    "InvalidParameters",
    "MaxSendsReached",
    "NoMoreSteps",
    "NotCovered",
    "NotFound",
    "RateLimited",
    "SessionUsed",
    "SilentAuthFailed",
    "Throttled",
    "TooManyAttempts",
]


class DomainError(Exception):
    """Base of every error a caller of the domain can be shown."""


class NotFound(DomainError):
    def __init__(self, request_id: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id


class Conflict(DomainError):
    pass


class DestinationBusy(Conflict):
    def __init__(self, request_id: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id


class CodelessStep(Conflict):
    pass


class NoMoreSteps(Conflict):
    pass


class SessionUsed(Conflict):
    pass


class InvalidCode(DomainError):
    pass


class TooManyAttempts(DomainError):
    pass


class NotCovered(DomainError):
    pass


class SilentAuthFailed(DomainError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RateLimited(DomainError):
    pass


class MaxSendsReached(RateLimited):
    pass


class Throttled(RateLimited):
    """Too many starts (or failed logins) in a window; `retry_after` seconds until one frees."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(scope)
        self.scope = scope
        self.retry_after = retry_after


class Blocked(DomainError):
    """The fraud guard refused the send: `reason` is "geo" (the destination's country is not
    allowed for the tenant) or "fraud" (the country's adaptive budget is spent)."""

    def __init__(self, reason: str, calling_code: str) -> None:
        super().__init__(f"{reason}: +{calling_code}")
        self.reason = reason
        self.calling_code = calling_code


class InvalidParameters(DomainError):
    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in problems))
        self.problems = problems

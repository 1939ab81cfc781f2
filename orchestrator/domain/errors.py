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
│   └── MaxSendsReached     no send left on this verification
└── InvalidParameters   the request failed validation (carries name/reason pairs)
"""

from __future__ import annotations

__all__ = [
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


class InvalidParameters(DomainError):
    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in problems))
        self.problems = problems

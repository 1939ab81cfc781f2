"""The state machine: `begin()` starts a verification, `transition()` moves it on. Pure."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from . import errors, policy
from .effects import CancelTimeout, Effect, Emit, ReleaseDestinations, ScheduleTimeout, SendStep
from .events import (
    Cancel,
    CodeSubmitted,
    DeliveryFailed,
    DeviceResult,
    Event,
    NextWorkflow,
    StepTimedOut,
)
from .models import Channel, Status, StepStatus, Verification

__all__ = ["CodeTools", "Refused", "Transition", "begin", "transition"]


class CodeTools(Protocol):
    """Randomness and keyed hashing, passed in so the machine stays pure and testable."""

    def new_code(self, length: int) -> str: ...
    def new_sa_code(self) -> str: ...
    def new_token(self) -> str: ...
    def hash_code(self, request_id: str, code: str) -> str: ...
    def seal(self, code: str) -> str: ...
    def unseal(self, sealed: str) -> str: ...


@dataclass
class Transition:
    state: Verification
    effects: list[Effect] = field(default_factory=list)
    # the plaintext code handed back to the caller once (silent auth: the device's code)
    issued_code: str | None = None


def begin(v: Verification, now: datetime, tools: CodeTools) -> Transition:
    """Start the first step of a freshly built verification."""
    t = Transition(v)
    _start_step(t, 0, now, tools)
    return t


def transition(v: Verification, event: Event, now: datetime, tools: CodeTools) -> Transition:
    """Apply `event` to `v` at `now`; raise a DomainError when the event is refused."""
    v = v.model_copy(deep=True)
    t = Transition(v)
    if isinstance(event, StepTimedOut | DeliveryFailed):
        # workers' events may arrive late or twice: a stale one changes nothing
        step = v.step
        if v.status is not Status.PENDING or event.step != v.current or step is None:
            return t
        if step.status is not StepStatus.PENDING:
            return t
        failed = isinstance(event, DeliveryFailed)
        _finish_step(t, StepStatus.FAILED if failed else StepStatus.EXPIRED, now)
        _advance_or_end(t, Status.FAILED if failed else Status.EXPIRED, now, tools)
        return t
    if v.status is not Status.PENDING:
        raise errors.NotFound(v.request_id)
    match event:
        case CodeSubmitted(code_hash=candidate):
            _check_code(t, candidate, now, tools)
        case NextWorkflow():
            if v.current + 1 >= len(v.steps):
                raise errors.NoMoreSteps()
            _finish_step(t, StepStatus.EXPIRED, now)
            _start_step(t, v.current + 1, now, tools)
        case Cancel():
            t.effects.append(CancelTimeout(v.current))
            v.status = Status.CANCELLED
            v.finished_at = now
            v.sealed_code = None
            t.effects.append(ReleaseDestinations())
        case DeviceResult():
            _device_result(t, event, now, tools)
    return t


def _check_code(t: Transition, candidate: str, now: datetime, tools: CodeTools) -> None:
    v = t.state
    step = v.step
    assert step is not None
    silent = step.channel is Channel.SILENT_AUTH
    if silent and not v.sa_code_issued:
        raise errors.CodelessStep()
    # compare against every issued code without stopping early, so timing tells nothing
    matched = False
    known_hashes = [v.sa_code_hash] if silent and v.sa_code_hash else v.code_hashes
    for known in known_hashes:
        matched |= hmac.compare_digest(known, candidate)
    if matched:
        _finish_step(t, StepStatus.COMPLETED, now)
        _end(t, Status.COMPLETED, now)
        return
    if silent:
        # a silent-auth code allows one check; a wrong one fails the step and moves on
        _finish_step(t, StepStatus.FAILED, now)
        _advance_or_end(t, Status.FAILED, now, tools)
        raise Refused(t, errors.InvalidCode())
    v.wrong_attempts += 1
    if v.wrong_attempts >= policy.MAX_CODE_ATTEMPTS:
        _finish_step(t, StepStatus.FAILED, now)
        _end(t, Status.FAILED, now)
        raise Refused(t, errors.TooManyAttempts())
    raise Refused(t, errors.InvalidCode())


def _device_result(t: Transition, event: DeviceResult, now: datetime, tools: CodeTools) -> None:
    v = t.state
    step = v.step
    stale = step is None or event.step != v.current or step.channel is not Channel.SILENT_AUTH
    if stale or v.sa_code_issued:
        raise errors.SessionUsed()
    assert step is not None
    if event.outcome == "completed":
        code = tools.new_sa_code()
        v.sa_code_hash = tools.hash_code(v.request_id, code)
        v.sa_code_issued = True
        t.issued_code = code
        return
    status = StepStatus.USER_REJECTED if event.outcome == "user_rejected" else StepStatus.FAILED
    _finish_step(t, status, now)
    _advance_or_end(t, Status.FAILED, now, tools)
    raise Refused(t, errors.SilentAuthFailed(event.reason))


class Refused(errors.DomainError):
    """A refusal that still changed state (a counted wrong code); the store commits `t` first."""

    def __init__(self, t: Transition, error: errors.DomainError) -> None:
        super().__init__(str(error))
        self.transition = t
        self.error = error


def _start_step(t: Transition, index: int, now: datetime, tools: CodeTools) -> None:
    v = t.state
    v.current = index
    step = v.steps[index]
    step.status = StepStatus.PENDING
    step.initiated_at = now
    if step.channel is Channel.SILENT_AUTH:
        v.sa_session = tools.new_token()
        v.sa_code_issued = False
        timeout = policy.SILENT_AUTH_TIMEOUT
        _emit(t, "event", index, "action_pending", now)
    else:
        timeout = v.channel_timeout
        code = _code_for(v, index, tools)
        v.code_hashes.append(tools.hash_code(v.request_id, code))
        t.effects.append(SendStep(index, tools.seal(code)))
    t.effects.append(ScheduleTimeout(index, now + timedelta(seconds=timeout)))


def _code_for(v: Verification, index: int, tools: CodeTools) -> str:
    if v.custom_code is not None:
        return v.custom_code
    step = v.steps[index]
    if step.reuse_code and v.sealed_code is not None:
        code = tools.unseal(v.sealed_code)
    else:
        code = tools.new_code(v.code_length)
    # keep the code (sealed) only while a later step still has to send it again
    later_reuse = any(
        s.reuse_code and s.channel is not Channel.SILENT_AUTH for s in v.steps[index + 1 :]
    )
    v.sealed_code = tools.seal(code) if later_reuse else None
    return code


def _finish_step(t: Transition, status: StepStatus, now: datetime) -> None:
    v = t.state
    step = v.step
    assert step is not None
    step.status = status
    step.finalized_at = now
    # the device's silent-auth code allows one check and dies with its step
    v.sa_code_hash = None
    t.effects.append(CancelTimeout(v.current))
    _emit(t, "event", v.current, status.value, now)


def _advance_or_end(t: Transition, final: Status, now: datetime, tools: CodeTools) -> None:
    v = t.state
    if v.current + 1 < len(v.steps):
        _start_step(t, v.current + 1, now, tools)
    else:
        _end(t, final, now)


def _end(t: Transition, status: Status, now: datetime) -> None:
    v = t.state
    v.status = status
    v.finished_at = now
    v.sealed_code = None
    v.sa_session = None
    _emit(t, "summary", None, status.value, now)
    t.effects.append(ReleaseDestinations())


def _emit(
    t: Transition, kind: Literal["event", "summary"], step: int | None, status: str, now: datetime
) -> None:
    v = t.state
    if not v.notify:
        return
    v.emitted += 1
    t.effects.append(Emit(kind, step, status, now, v.emitted))

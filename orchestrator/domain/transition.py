"""The state machine: `begin()` starts a verification, `transition()` moves it on. Pure."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from orchestrator.domain import errors, policy
from orchestrator.domain.effects import (
    CancelTimeout,
    Effect,
    Emit,
    ReleaseDestinations,
    ScheduleTimeout,
    SendStep,
)
from orchestrator.domain.events import (
    WHOLE_VERIFICATION,
    Approve,
    Cancel,
    CodeSubmitted,
    DeliveryFailed,
    DeviceResult,
    Event,
    NextWorkflow,
    Resend,
    SilentCheck,
    StepTimedOut,
)
from orchestrator.domain.models import Channel, Status, StepStatus, Verification

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
    if v.rules.lifetime is not None:
        at = now + timedelta(seconds=v.rules.lifetime)
        t.effects.append(ScheduleTimeout(WHOLE_VERIFICATION, at))
    _start_step(t, 0, now, tools)
    return t


def transition(v: Verification, event: Event, now: datetime, tools: CodeTools) -> Transition:
    """Apply `event` to `v` at `now`; raise a DomainError when the event is refused."""
    v = v.model_copy(deep=True)
    t = Transition(v)
    if isinstance(event, StepTimedOut) and event.step == WHOLE_VERIFICATION:
        if v.status is Status.PENDING:
            if v.step is not None and v.step.status is StepStatus.PENDING:
                _finish_step(t, StepStatus.EXPIRED, now)
            _end(t, Status.EXPIRED, now)
        return t
    if isinstance(event, StepTimedOut | DeliveryFailed):
        # workers' events may arrive late or twice: a stale one changes nothing
        step = v.step
        if v.status is not Status.PENDING or event.step != v.current or step is None:
            return t
        if step.status is not StepStatus.PENDING:
            return t
        failed = isinstance(event, DeliveryFailed)
        reason = event.reason if isinstance(event, DeliveryFailed) else None
        _finish_step(t, StepStatus.FAILED if failed else StepStatus.EXPIRED, now, reason)
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
            if v.rules.report_cancel:
                _end(t, Status.CANCELLED, now)
            else:
                v.status = Status.CANCELLED
                v.finished_at = now
                v.sealed_code = None
                t.effects.append(ReleaseDestinations())
        case DeviceResult():
            _device_result(t, event, now, tools)
        case Resend(step=new_step):
            if len(v.steps) >= v.rules.max_sends:
                raise errors.MaxSendsReached()
            if v.step is not None and v.step.status is StepStatus.PENDING:
                _finish_step(t, StepStatus.EXPIRED, now)
            v.steps.append(new_step.model_copy(deep=True))
            _start_step(t, len(v.steps) - 1, now, tools)
        case Approve():
            _finish_step(t, StepStatus.COMPLETED, now)
            _end(t, Status.COMPLETED, now)
        case SilentCheck():
            step = v.step
            if step is None or step.channel is not Channel.SILENT_AUTH or not v.sa_verified:
                raise errors.InvalidCode()
            _finish_step(t, StepStatus.COMPLETED, now)
            _end(t, Status.COMPLETED, now)
    return t


def _check_code(t: Transition, candidate: str, now: datetime, tools: CodeTools) -> None:
    v = t.state
    step = v.step
    assert step is not None
    silent = step.channel is Channel.SILENT_AUTH
    if silent and not v.sa_code_issued:
        raise errors.CodelessStep()
    if v.rules.refuse_after_max and v.wrong_attempts >= v.rules.max_checks:
        # Twilio: the check after the last allowed one is refused and ends the verification
        _finish_step(t, StepStatus.FAILED, now)
        _end(t, Status.FAILED, now)
        raise Refused(t, errors.TooManyAttempts())
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
    if not v.rules.refuse_after_max and v.wrong_attempts >= v.rules.max_checks:
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
        v.sa_verified = True
        t.issued_code = code
        return
    status = StepStatus.USER_REJECTED if event.outcome == "user_rejected" else StepStatus.FAILED
    _finish_step(t, status, now, event.reason or None)
    v.sa_failures.append(event.reason or event.outcome)
    last = v.current + 1 >= len(v.steps)
    if not (last and v.rules.pending_after_silent_failure):
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
    timeout: int | None
    if step.channel is Channel.SILENT_AUTH:
        v.sa_session = tools.new_token()
        v.sa_code_issued = False
        timeout = policy.SILENT_AUTH_TIMEOUT
        _emit(t, "event", index, "action_pending", now)
    else:
        # a workflow file's step may carry its own timeout (seconds), which applies even where
        # the dialect's code steps don't time out by themselves (Twilio: only its lifetime)
        own = step.options.get("timeout")
        if isinstance(own, int) and not isinstance(own, bool) and own > 0:
            timeout = own
        else:
            timeout = v.channel_timeout if v.rules.step_timeouts else None
        code = _code_for(v, index, tools)
        code_hash = tools.hash_code(v.request_id, code)
        if code_hash not in v.code_hashes:
            v.code_hashes.append(code_hash)
        t.effects.append(SendStep(index, tools.seal(code)))
    if timeout is not None:
        t.effects.append(ScheduleTimeout(index, now + timedelta(seconds=timeout)))


def _code_for(v: Verification, index: int, tools: CodeTools) -> str:
    if v.custom_code is not None:
        return v.custom_code
    step = v.steps[index]
    if (step.reuse_code or v.rules.keep_code) and v.sealed_code is not None:
        code = tools.unseal(v.sealed_code)
    else:
        code = tools.new_code(v.code_length)
    # keep the code (sealed) only while a later send may have to carry it again
    later_reuse = v.rules.keep_code or any(
        s.reuse_code and s.channel is not Channel.SILENT_AUTH for s in v.steps[index + 1 :]
    )
    v.sealed_code = tools.seal(code) if later_reuse else None
    return code


def _finish_step(
    t: Transition, status: StepStatus, now: datetime, reason: str | None = None
) -> None:
    v = t.state
    step = v.step
    assert step is not None
    step.status = status
    step.finalized_at = now
    step.reason = reason[:200] if reason else None
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

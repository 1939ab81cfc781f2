"""The pure state machine: `begin()` and `transition()` with fake code tools and fixed clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

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
    Cancel,
    CodeSubmitted,
    DeliveryFailed,
    DeviceResult,
    Event,
    NextWorkflow,
    StepTimedOut,
)
from orchestrator.domain.models import Channel, Status, Step, StepStatus, Verification
from orchestrator.domain.transition import Refused, Transition, begin, transition

RID = "6a1f3c2e-0b7d-4d59-9a43-1c2b3d4e5f60"
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=30)
T2 = T0 + timedelta(seconds=200)
T3 = T0 + timedelta(seconds=400)


class FakeTools:
    """Deterministic `CodeTools`: codes 1111, 2222, ...; readable hashes; reversible seals."""

    def __init__(self) -> None:
        self.codes = 0
        self.sa_codes = 0
        self.tokens = 0

    def new_code(self, length: int) -> str:
        self.codes += 1
        return (str(self.codes) * length)[:length]

    def new_sa_code(self) -> str:
        self.sa_codes += 1
        return f"SA{self.sa_codes:06d}"

    def new_token(self) -> str:
        self.tokens += 1
        return f"token-{self.tokens}"

    def hash_code(self, request_id: str, code: str) -> str:
        return f"h:{request_id}:{code}"

    def seal(self, code: str) -> str:
        return f"sealed:{code}"

    def unseal(self, sealed: str) -> str:
        assert sealed.startswith("sealed:"), sealed
        return sealed.removeprefix("sealed:")


def h(code: str) -> str:
    return f"h:{RID}:{code}"


def submit(code: str) -> CodeSubmitted:
    return CodeSubmitted(h(code))


def make(
    *channels: str | tuple[str, dict[str, Any]],
    notify: bool = True,
    channel_timeout: int = 180,
    code_length: int = 4,
    custom_code: str | None = None,
) -> Verification:
    """A fresh, not yet begun verification; a channel may come with Step fields, e.g. reuse_code."""
    steps = []
    for entry in channels:
        name, extra = (entry, {}) if isinstance(entry, str) else entry
        to = "someone@example.com" if name == "email" else "447700900123"
        steps.append(Step(channel=Channel(name), to=to, **extra))
    return Verification(
        request_id=RID,
        tenant="tenant-1",
        brand="ACME",
        locale="en-gb",
        channel_timeout=channel_timeout,
        code_length=code_length,
        steps=steps,
        created_at=T0,
        custom_code=custom_code,
        notify=notify,
    )


def started(
    *channels: str | tuple[str, dict[str, Any]], **kw: Any
) -> tuple[Verification, FakeTools]:
    tools = FakeTools()
    t = begin(make(*channels, **kw), T0, tools)
    return t.state, tools


def emits(effects: list[Effect]) -> list[tuple[str, int | None, str]]:
    return [(e.kind, e.step, e.status) for e in effects if isinstance(e, Emit)]


def refuse(v: Verification, event: Event, now: datetime, tools: FakeTools) -> Refused:
    with pytest.raises(Refused) as info:
        transition(v, event, now, tools)
    return info.value


# ---- begin ----------------------------------------------------------------------------------


def test_begin_code_step_sends_and_schedules_timeout() -> None:
    tools = FakeTools()
    t = begin(make("sms", "voice", channel_timeout=120), T0, tools)
    assert t.effects == [
        SendStep(0, "sealed:1111"),
        ScheduleTimeout(0, T0 + timedelta(seconds=120)),
    ]
    v = t.state
    assert v.current == 0
    assert v.status is Status.PENDING
    assert v.steps[0].status is StepStatus.PENDING
    assert v.steps[0].initiated_at == T0
    assert v.steps[1].status is StepStatus.UNUSED
    assert v.code_hashes == [h("1111")]
    assert v.sealed_code is None  # no later step reuses the code, so it is not kept
    assert t.issued_code is None


def test_begin_code_length_is_respected() -> None:
    tools = FakeTools()
    t = begin(make("sms", code_length=8), T0, tools)
    assert t.effects[0] == SendStep(0, "sealed:11111111")


def test_begin_silent_auth_emits_action_pending_and_waits_60s() -> None:
    tools = FakeTools()
    t = begin(make("silent_auth", "sms", channel_timeout=600), T0, tools)
    assert t.effects == [
        Emit("event", 0, "action_pending", T0, 1),
        ScheduleTimeout(0, T0 + timedelta(seconds=policy.SILENT_AUTH_TIMEOUT)),
    ]
    assert policy.SILENT_AUTH_TIMEOUT == 60
    assert not any(isinstance(e, SendStep) for e in t.effects)
    v = t.state
    assert v.sa_session == "token-1"
    assert v.sa_code_issued is False
    assert v.code_hashes == []
    assert v.emitted == 1


# ---- codes ----------------------------------------------------------------------------------


def test_right_code_completes_with_event_summary_and_release() -> None:
    v, tools = started("sms", "voice")
    t = transition(v, submit("1111"), T1, tools)
    assert t.effects == [
        CancelTimeout(0),
        Emit("event", 0, "completed", T1, 1),
        Emit("summary", None, "completed", T1, 2),
        ReleaseDestinations(),
    ]
    s = t.state
    assert s.status is Status.COMPLETED
    assert s.finished_at == T1
    assert s.steps[0].status is StepStatus.COMPLETED
    assert s.steps[0].finalized_at == T1
    assert s.steps[1].status is StepStatus.UNUSED
    assert s.emitted == 2


def test_wrong_codes_count_then_third_ends_failed() -> None:
    v, tools = started("sms", "voice")
    first = refuse(v, submit("9999"), T1, tools)
    assert isinstance(first.error, errors.InvalidCode)
    assert first.transition.state.wrong_attempts == 1
    assert first.transition.state.status is Status.PENDING
    assert first.transition.effects == []
    assert v.wrong_attempts == 0  # the input is untouched; the store commits the refusal's state

    second = refuse(first.transition.state, submit("8888"), T1, tools)
    assert isinstance(second.error, errors.InvalidCode)
    assert second.transition.state.wrong_attempts == 2
    assert second.transition.state.status is Status.PENDING

    third = refuse(second.transition.state, submit("7777"), T1, tools)
    assert isinstance(third.error, errors.TooManyAttempts)
    s = third.transition.state
    assert s.wrong_attempts == policy.MAX_CODE_ATTEMPTS == 3
    assert s.status is Status.FAILED
    assert s.finished_at == T1
    assert s.steps[0].status is StepStatus.FAILED
    assert s.steps[1].status is StepStatus.UNUSED  # no failover after too many wrong codes
    assert third.transition.effects == [
        CancelTimeout(0),
        Emit("event", 0, "failed", T1, 1),
        Emit("summary", None, "failed", T1, 2),
        ReleaseDestinations(),
    ]
    # the right code after the lock-out: the verification is gone
    with pytest.raises(errors.NotFound):
        transition(s, submit("1111"), T1, tools)


def test_right_code_after_wrong_ones_still_completes() -> None:
    v, tools = started("sms")
    v = refuse(v, submit("0000"), T1, tools).transition.state
    v = refuse(v, submit("0001"), T1, tools).transition.state
    assert transition(v, submit("1111"), T1, tools).state.status is Status.COMPLETED


def test_refused_is_a_domain_error_carrying_the_cause() -> None:
    v, tools = started("sms")
    r = refuse(v, submit("0000"), T1, tools)
    assert isinstance(r, errors.DomainError)
    assert isinstance(r.transition, Transition)


# ---- timeouts and delivery failures ---------------------------------------------------------


def test_timeout_advances_to_next_step() -> None:
    v, tools = started("sms", "voice")
    t = transition(v, StepTimedOut(0), T2, tools)
    assert t.effects == [
        CancelTimeout(0),
        Emit("event", 0, "expired", T2, 1),
        SendStep(1, "sealed:2222"),
        ScheduleTimeout(1, T2 + timedelta(seconds=180)),
    ]
    s = t.state
    assert s.status is Status.PENDING
    assert s.current == 1
    assert s.steps[0].status is StepStatus.EXPIRED
    assert s.steps[0].finalized_at == T2
    assert s.steps[1].status is StepStatus.PENDING
    assert s.steps[1].initiated_at == T2


def test_timeout_of_last_step_ends_expired() -> None:
    v, tools = started("sms", "voice")
    v = transition(v, StepTimedOut(0), T2, tools).state
    t = transition(v, StepTimedOut(1), T3, tools)
    assert t.effects == [
        CancelTimeout(1),
        Emit("event", 1, "expired", T3, 2),
        Emit("summary", None, "expired", T3, 3),
        ReleaseDestinations(),
    ]
    assert t.state.status is Status.EXPIRED
    assert t.state.finished_at == T3
    assert [s.status for s in t.state.steps] == [StepStatus.EXPIRED, StepStatus.EXPIRED]


@pytest.mark.parametrize(
    "event", [StepTimedOut(1), DeliveryFailed(1, "late")], ids=["timeout", "delivery"]
)
def test_stale_worker_event_for_another_step_is_a_noop(event: Event) -> None:
    v, tools = started("sms", "voice")
    t = transition(v, event, T2, tools)
    assert t.effects == []
    assert t.state == v


@pytest.mark.parametrize(
    "event", [StepTimedOut(0), DeliveryFailed(0, "late")], ids=["timeout", "delivery"]
)
def test_worker_event_after_finish_is_a_noop(event: Event) -> None:
    v, tools = started("sms", "voice")
    done = transition(v, submit("1111"), T1, tools).state
    t = transition(done, event, T2, tools)
    assert t.effects == []
    assert t.state == done


def test_worker_event_after_cancel_is_a_noop() -> None:
    v, tools = started("sms")
    cancelled = transition(v, Cancel(), T1, tools).state
    t = transition(cancelled, StepTimedOut(0), T2, tools)
    assert t.effects == []
    assert t.state == cancelled


def test_duplicate_timeout_is_a_noop() -> None:
    v, tools = started("sms", "voice")
    once = transition(v, StepTimedOut(0), T2, tools).state
    twice = transition(once, StepTimedOut(0), T2, tools)
    assert twice.effects == []
    assert twice.state == once


def test_delivery_failure_fails_over_to_next_step() -> None:
    v, tools = started("email", "sms")
    t = transition(v, DeliveryFailed(0, "SMTP down"), T1, tools)
    assert t.effects == [
        CancelTimeout(0),
        Emit("event", 0, "failed", T1, 1),
        SendStep(1, "sealed:2222"),
        ScheduleTimeout(1, T1 + timedelta(seconds=180)),
    ]
    assert t.state.steps[0].status is StepStatus.FAILED
    assert t.state.current == 1
    assert t.state.status is Status.PENDING


def test_delivery_failure_of_last_step_ends_failed() -> None:
    v, tools = started("sms")
    t = transition(v, DeliveryFailed(0, "carrier said no"), T1, tools)
    assert t.state.status is Status.FAILED
    assert emits(t.effects) == [("event", 0, "failed"), ("summary", None, "failed")]
    assert t.effects[-1] == ReleaseDestinations()


# ---- next_workflow and cancel ---------------------------------------------------------------


def test_next_workflow_advances_then_no_more_steps() -> None:
    v, tools = started("sms", "whatsapp")
    t = transition(v, NextWorkflow(), T1, tools)
    assert t.effects == [
        CancelTimeout(0),
        Emit("event", 0, "expired", T1, 1),
        SendStep(1, "sealed:2222"),
        ScheduleTimeout(1, T1 + timedelta(seconds=180)),
    ]
    assert t.state.current == 1
    assert t.state.steps[0].status is StepStatus.EXPIRED
    with pytest.raises(errors.NoMoreSteps):
        transition(t.state, NextWorkflow(), T2, tools)


def test_next_workflow_on_single_step_is_refused() -> None:
    v, tools = started("sms")
    with pytest.raises(errors.NoMoreSteps):
        transition(v, NextWorkflow(), T1, tools)
    assert isinstance(errors.NoMoreSteps(), errors.Conflict)


def test_cancel_ends_cancelled_without_webhooks() -> None:
    v, tools = started("sms", "voice", notify=True)
    t = transition(v, Cancel(), T1, tools)
    assert t.effects == [CancelTimeout(0), ReleaseDestinations()]
    assert not any(isinstance(e, Emit) for e in t.effects)
    assert t.state.status is Status.CANCELLED
    assert t.state.finished_at == T1
    assert t.state.sealed_code is None
    assert t.state.emitted == 0


FINISHERS: list[tuple[str, Event]] = [
    ("completed", submit("1111")),
    ("cancelled", Cancel()),
]
LATE_EVENTS: list[Event] = [
    submit("1111"),
    NextWorkflow(),
    Cancel(),
    DeviceResult(0, "completed"),
]


@pytest.mark.parametrize("late", LATE_EVENTS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("finisher", FINISHERS, ids=[name for name, _ in FINISHERS])
def test_client_events_on_finished_verification_are_not_found(
    finisher: tuple[str, Event], late: Event
) -> None:
    v, tools = started("sms", "voice")
    done = transition(v, finisher[1], T1, tools).state
    assert done.status is not Status.PENDING
    with pytest.raises(errors.NotFound) as info:
        transition(done, late, T2, tools)
    assert info.value.request_id == RID


def test_events_on_expired_verification_are_not_found() -> None:
    v, tools = started("sms")
    expired = transition(v, StepTimedOut(0), T2, tools).state
    assert expired.status is Status.EXPIRED
    with pytest.raises(errors.NotFound):
        transition(expired, submit("1111"), T3, tools)


# ---- codes across steps ---------------------------------------------------------------------


def test_reuse_code_sends_the_same_code_again() -> None:
    v, tools = started("sms", ("voice", {"reuse_code": True}))
    assert v.sealed_code == "sealed:1111"  # kept (sealed) because step 1 will send it again
    t = transition(v, StepTimedOut(0), T2, tools)
    assert SendStep(1, "sealed:1111") in t.effects
    assert t.state.sealed_code is None  # nothing later needs it any more
    assert t.state.code_hashes == [h("1111")]  # the same code is stored once
    assert tools.codes == 1


def test_without_reuse_each_step_gets_a_new_code_and_earlier_codes_still_verify() -> None:
    v, tools = started("sms", "voice")
    v = transition(v, StepTimedOut(0), T2, tools).state
    assert v.code_hashes == [h("1111"), h("2222")]
    assert v.sealed_code is None
    # a code that arrived late over the previous channel is still the user's proof of possession
    assert transition(v, submit("1111"), T3, tools).state.status is Status.COMPLETED


def test_sealed_code_is_dropped_when_the_verification_ends() -> None:
    v, tools = started("sms", ("voice", {"reuse_code": True}))
    assert v.sealed_code is not None
    assert transition(v, submit("1111"), T1, tools).state.sealed_code is None
    assert transition(v, Cancel(), T1, tools).state.sealed_code is None


def test_custom_code_is_used_on_every_step() -> None:
    v, tools = started("sms", "email", custom_code="Ab12cd")
    assert v.code_hashes == [h("Ab12cd")]
    t = transition(v, NextWorkflow(), T1, tools)
    assert SendStep(1, "sealed:Ab12cd") in t.effects
    assert tools.codes == 0
    assert transition(t.state, submit("Ab12cd"), T2, tools).state.status is Status.COMPLETED


def test_reuse_code_after_silent_auth_reuses_the_first_real_code() -> None:
    v, tools = started("silent_auth", "sms", ("voice", {"reuse_code": True}))
    t1 = transition(v, StepTimedOut(0), T1, tools)
    assert SendStep(1, "sealed:1111") in t1.effects
    assert t1.state.sealed_code == "sealed:1111"
    t = transition(t1.state, StepTimedOut(1), T2, tools)
    assert SendStep(2, "sealed:1111") in t.effects


# ---- silent auth ----------------------------------------------------------------------------


def test_device_completed_issues_a_code_once() -> None:
    v, tools = started("silent_auth", "sms")
    t = transition(v, DeviceResult(0, "completed"), T1, tools)
    assert t.issued_code == "SA000001"
    assert t.effects == []
    assert t.state.sa_code_issued is True
    assert t.state.sa_code_hash == h("SA000001")
    assert t.state.code_hashes == []
    assert t.state.status is Status.PENDING
    with pytest.raises(errors.SessionUsed):
        transition(t.state, DeviceResult(0, "completed"), T1, tools)
    done = transition(t.state, submit("SA000001"), T1, tools)
    assert done.state.status is Status.COMPLETED
    assert done.state.steps[0].status is StepStatus.COMPLETED
    assert emits(done.effects) == [("event", 0, "completed"), ("summary", None, "completed")]


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("user_rejected", StepStatus.USER_REJECTED), ("failed", StepStatus.FAILED)],
)
def test_device_negative_result_advances(outcome: Any, status: StepStatus) -> None:
    v, tools = started("silent_auth", "sms")
    r = refuse(v, DeviceResult(0, outcome, "Device MSISDN does not match."), T1, tools)
    assert isinstance(r.error, errors.SilentAuthFailed)
    assert r.error.reason == "Device MSISDN does not match."
    s = r.transition.state
    assert s.steps[0].status is status
    assert s.current == 1
    assert s.steps[1].status is StepStatus.PENDING
    assert s.status is Status.PENDING
    assert r.transition.effects == [
        CancelTimeout(0),
        Emit("event", 0, status.value, T1, 2),
        SendStep(1, "sealed:1111"),
        ScheduleTimeout(1, T1 + timedelta(seconds=180)),
    ]


def test_device_negative_result_on_silent_auth_only_workflow_ends_failed() -> None:
    v, tools = started("silent_auth")
    r = refuse(v, DeviceResult(0, "failed"), T1, tools)
    assert r.transition.state.status is Status.FAILED
    assert emits(r.transition.effects)[-1] == ("summary", None, "failed")


def test_device_result_for_a_stale_step_is_session_used() -> None:
    v, tools = started("silent_auth", "sms")
    moved = transition(v, StepTimedOut(0), T1, tools).state
    with pytest.raises(errors.SessionUsed):
        transition(moved, DeviceResult(0, "completed"), T1, tools)
    with pytest.raises(errors.SessionUsed):  # the current step is not silent auth
        transition(moved, DeviceResult(1, "completed"), T1, tools)


def test_code_check_during_silent_auth_before_device_is_codeless() -> None:
    v, tools = started("silent_auth", "sms")
    with pytest.raises(errors.CodelessStep):
        transition(v, submit("1111"), T1, tools)


def test_wrong_silent_auth_code_fails_the_step_and_advances() -> None:
    v, tools = started("silent_auth", "sms")
    v = transition(v, DeviceResult(0, "completed"), T1, tools).state
    r = refuse(v, submit("WRONG123"), T1, tools)
    assert isinstance(r.error, errors.InvalidCode)
    s = r.transition.state
    assert s.steps[0].status is StepStatus.FAILED
    assert s.current == 1
    assert s.status is Status.PENDING
    assert s.wrong_attempts == 0  # the SA code's single chance is not an OTP attempt
    assert SendStep(1, "sealed:1111") in r.transition.effects


def test_wrong_silent_auth_code_on_last_step_ends_failed() -> None:
    v, tools = started("silent_auth")
    v = transition(v, DeviceResult(0, "completed"), T1, tools).state
    r = refuse(v, submit("WRONG123"), T1, tools)
    assert r.transition.state.status is Status.FAILED
    assert r.transition.effects[-1] == ReleaseDestinations()


@pytest.mark.parametrize(
    "ender", [StepTimedOut(0), NextWorkflow(), submit("WRONG123")], ids=["timeout", "next", "wrong"]
)
def test_silent_auth_code_dies_with_its_step(ender: Event) -> None:
    v, tools = started("silent_auth", "sms")
    v = transition(v, DeviceResult(0, "completed"), T1, tools).state
    try:
        moved = transition(v, ender, T1, tools).state
    except Refused as exc:
        moved = exc.transition.state
    assert moved.current == 1
    assert moved.code_hashes == [h("1111")]
    r = refuse(moved, submit("SA000001"), T2, tools)
    assert isinstance(r.error, errors.InvalidCode)
    assert r.transition.state.wrong_attempts == 1


def test_next_workflow_leaves_silent_auth() -> None:
    v, tools = started("silent_auth", "sms")
    t = transition(v, NextWorkflow(), T1, tools)
    assert t.state.steps[0].status is StepStatus.EXPIRED
    assert t.state.current == 1
    assert SendStep(1, "sealed:1111") in t.effects


# ---- notify ---------------------------------------------------------------------------------


def test_notify_false_emits_nothing_anywhere() -> None:
    tools = FakeTools()
    t = begin(make("silent_auth", "sms", "voice", notify=False), T0, tools)
    seen = list(t.effects)
    v = refuse(t.state, DeviceResult(0, "user_rejected"), T1, tools).transition
    seen += v.effects
    nxt = transition(v.state, StepTimedOut(1), T2, tools)
    seen += nxt.effects
    r = refuse(nxt.state, submit("0000"), T2, tools)
    seen += r.transition.effects
    done = transition(r.transition.state, submit("2222"), T3, tools)
    seen += done.effects
    assert done.state.status is Status.COMPLETED
    assert not any(isinstance(e, Emit) for e in seen)
    assert done.state.emitted == 0
    assert seen[-1] == ReleaseDestinations()


def test_emit_sequence_numbers_increase_across_transitions() -> None:
    v, tools = started("silent_auth", "sms", "voice")
    v2 = refuse(v, DeviceResult(0, "failed"), T1, tools).transition.state
    t3 = transition(v2, StepTimedOut(1), T2, tools)
    t4 = transition(t3.state, StepTimedOut(2), T3, tools)
    seqs = [e.seq for e in t4.effects if isinstance(e, Emit)]
    assert seqs == [4, 5]  # 1 action_pending, 2 failed, 3 expired, then 4 expired + 5 summary
    assert t4.state.emitted == 5


# ---- purity ---------------------------------------------------------------------------------


SCENARIOS: list[tuple[str, tuple[str, ...], Event]] = [
    ("right-code", ("sms", "voice"), submit("1111")),
    ("wrong-code", ("sms", "voice"), submit("0000")),
    ("timeout", ("sms", "voice"), StepTimedOut(0)),
    ("last-timeout", ("sms",), StepTimedOut(0)),
    ("delivery-failed", ("email", "sms"), DeliveryFailed(0, "x")),
    ("next-workflow", ("sms", "voice"), NextWorkflow()),
    ("no-more-steps", ("sms",), NextWorkflow()),
    ("cancel", ("sms",), Cancel()),
    ("device-completed", ("silent_auth", "sms"), DeviceResult(0, "completed")),
    ("device-rejected", ("silent_auth", "sms"), DeviceResult(0, "user_rejected")),
    ("codeless", ("silent_auth", "sms"), submit("1111")),
]


@pytest.mark.parametrize(
    ("channels", "event"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS]
)
def test_transition_never_mutates_its_input(channels: tuple[str, ...], event: Event) -> None:
    v, tools = started(*channels)
    before = v.model_dump()
    steps_before = [s.model_copy() for s in v.steps]
    hashes = v.code_hashes
    try:
        t = transition(v, event, T1, tools)
    except Refused as exc:
        t = exc.transition
    except errors.DomainError:
        t = None
    assert v.model_dump() == before
    assert v.steps == steps_before
    assert v.code_hashes is hashes
    if t is not None:
        assert t.state is not v
        assert all(a is not b for a, b in zip(t.state.steps, v.steps, strict=True))
        assert t.state.code_hashes is not v.code_hashes
        for new, old in zip(t.state.steps, v.steps, strict=True):
            assert new.options is not old.options

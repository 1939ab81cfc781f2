"""A failed step keeps why it failed, and the webhooks say so: the Vonage event's `reason`, the
Twilio verification event's `failure_reason`."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.dialects.twilio import webhook_events
from orchestrator.dialects.vonage import wire
from orchestrator.domain.effects import Emit
from orchestrator.domain.events import DeliveryFailed, DeviceResult, StepTimedOut
from orchestrator.domain.models import StepStatus
from orchestrator.domain.transition import Refused, transition
from tests.unit.domain.test_transition import T0, refuse, started


def _emits(t_effects: list[object]) -> list[Emit]:
    return [e for e in t_effects if isinstance(e, Emit)]


def test_a_delivery_failure_keeps_its_reason_and_the_vonage_event_carries_it() -> None:
    v, tools = started("sms", "voice")
    t = transition(v, DeliveryFailed(0, "sim_swap"), T0 + timedelta(seconds=1), tools)
    step = t.state.steps[0]
    assert step.status is StepStatus.FAILED and step.reason == "sim_swap"
    event = next(e for e in _emits(t.effects) if e.kind == "event" and e.step == 0)
    body = wire.webhook_body(t.state, event, "https://verify.example")
    assert body["status"] == "failed" and body["reason"] == "sim_swap"
    # the next step starts without a reason of its own
    assert t.state.current == 1 and t.state.steps[1].reason is None


def test_a_timeout_has_no_reason_and_its_event_no_reason_field() -> None:
    v, tools = started("sms", "voice")
    t = transition(v, StepTimedOut(0), T0 + timedelta(seconds=181), tools)
    assert t.state.steps[0].status is StepStatus.EXPIRED and t.state.steps[0].reason is None
    event = next(e for e in _emits(t.effects) if e.kind == "event" and e.step == 0)
    assert "reason" not in wire.webhook_body(t.state, event, "https://verify.example")


def test_a_silent_auth_failure_keeps_the_operators_reason() -> None:
    v, tools = started("silent_auth", "sms")
    refused: Refused = refuse(v, DeviceResult(0, "failed", "not_on_mobile_network"), T0, tools)
    state = refused.transition.state
    assert state.steps[0].reason == "not_on_mobile_network"
    event = next(e for e in _emits(refused.transition.effects) if e.kind == "event" and e.step == 0)
    assert wire.webhook_body(state, event, "https://verify.example")["reason"] == (
        "not_on_mobile_network"
    )


def test_the_twilio_failed_event_names_the_last_reason() -> None:
    v, tools = started("sms")
    v.dialect = "twilio"
    v.account = "AC" + "0" * 32
    t = transition(v, DeliveryFailed(0, "sim_swap"), T0 + timedelta(seconds=1), tools)
    summary = next(e for e in _emits(t.effects) if e.kind == "summary")
    params = webhook_events.render_event(t.state, summary)
    assert params is not None
    assert params["status"] == "failed" and params["failure_reason"] == "sim_swap"

"""Each condition against one number: calling code, number type, device IP covered (sandbox
table vs CAMARA), SIM swap within N hours (an operator that can't answer makes it false), and
local time in the number's zone; reasons worded for simulate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestrator.phone import number_of
from orchestrator.workflows.conditions import Facts, evaluate
from tests.unit.workflows.helpers import FakeCamara, operators

NOON = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def facts(to: str, device_ip: str | None = None, now: datetime = NOON, ops: Any = None) -> Facts:
    return Facts(to, number_of(to), device_ip, ops if ops is not None else operators(), now)


async def test_calling_code_in_and_out() -> None:
    held = await evaluate({"calling_code": ("44", "49")}, facts("447700900123"))
    assert (held.held, held.reasons) == (True, ("calling code 44 is in [44, 49]",))
    out = await evaluate({"calling_code": ("44", "49")}, facts("15555550100"))
    assert (out.held, out.reasons) == (False, ("calling code 1 is not in [44, 49]",))


async def test_a_sandbox_number_has_its_leading_digits_as_calling_code() -> None:
    assert (await evaluate({"calling_code": ("990",)}, facts("990123450"))).held


async def test_number_type_from_phonenumbers() -> None:
    mobile = await evaluate({"number_type": ("mobile",)}, facts("4915123456789"))
    assert (mobile.held, mobile.reasons) == (True, ("number type mobile is one of mobile",))
    fixed = await evaluate({"number_type": ("mobile",)}, facts("442071838750"))
    assert (fixed.held, fixed.reasons) == (False, ("number type fixed_line is not one of mobile",))
    # the US can't be told apart: fixed_line_or_mobile counts as either
    assert (await evaluate({"number_type": ("mobile",)}, facts("14155550100"))).held
    assert (await evaluate({"number_type": ("fixed_line",)}, facts("14155550100"))).held


async def test_device_ip_covered_by_the_sandbox_table() -> None:
    on = await evaluate({"device_ip_covered": True}, facts("447700900100", "100.64.0.42"))
    assert on.held
    assert on.reasons == ("device IP 100.64.0.42 is on Sandbox Mobile's mobile network",)
    off = await evaluate({"device_ip_covered": True}, facts("447700900100", "203.0.113.9"))
    assert (off.held, off.reasons) == (
        False,
        ("device IP 203.0.113.9 is not on Sandbox Mobile's mobile network",),
    )
    none = await evaluate({"device_ip_covered": True}, facts("447700900100"))
    assert none.reasons == ("no device IP given",)
    uncovered = await evaluate({"device_ip_covered": True}, facts("4915123456789", "100.64.0.42"))
    assert uncovered.reasons == ("no operator covers +4915123456789",)
    # `false` asks for the opposite
    assert (await evaluate({"device_ip_covered": False}, facts("447700900100"))).held


async def test_a_camara_operator_covering_the_number_counts_as_covered() -> None:
    ops = operators(("telco", FakeCamara("telco", False), ("49",)))
    verdict = await evaluate({"device_ip_covered": True}, facts("4915123456789", ops=ops))
    assert verdict.held
    assert "telco covers +4915123456789" in verdict.reasons[0]
    assert "counted as covered" in verdict.reasons[0]


async def test_sim_swap_within_hours_from_the_sandbox_table() -> None:
    # the table's 990… numbers ending in 8 changed their SIM an hour ago
    swapped = await evaluate({"sim_swap_within_hours": 24}, facts("990123458"))
    assert swapped.held
    assert swapped.reasons == ("the SIM changed within 24 h (Sandbox Mobile)",)
    kept = await evaluate({"sim_swap_within_hours": 24}, facts("990123450"))
    assert (kept.held, kept.reasons) == (
        False,
        ("the SIM did not change within 24 h (Sandbox Mobile)",),
    )


async def test_an_operator_that_cant_answer_makes_sim_swap_false_and_says_so() -> None:
    camara = FakeCamara("telco", None)
    ops = operators(("telco", camara, ("49",)))
    verdict = await evaluate({"sim_swap_within_hours": 12}, facts("4915123456789", ops=ops))
    assert not verdict.held
    assert verdict.reasons == (
        "operator telco can't answer SIM Swap (token endpoint unreachable): condition false",
    )
    nobody = await evaluate({"sim_swap_within_hours": 12}, facts("33612345678"))
    assert nobody.reasons == ("no operator answers SIM Swap for +33612345678: condition false",)


async def test_sim_swap_is_asked_once_per_start_and_not_after_a_failed_condition() -> None:
    camara = FakeCamara("telco", True)
    f = facts("4915123456789", ops=operators(("telco", camara, ("49",))))
    await evaluate({"sim_swap_within_hours": 12}, f)
    await evaluate({"sim_swap_within_hours": 12}, f)
    skipped = await evaluate({"calling_code": ("44",), "sim_swap_within_hours": 6}, f)
    assert not skipped.held and len(skipped.reasons) == 1
    assert camara.asked == [("4915123456789", 12)]


async def test_local_time_in_the_numbers_zone() -> None:
    window = {"local_time": ("08:00", "21:00")}
    # 12:00 UTC is 13:00 in Berlin, 04:00 in Los Angeles
    berlin = await evaluate(window, facts("4915123456789"))
    assert (berlin.held, berlin.reasons) == (
        True,
        ("local time 13:00 Europe/Berlin is within 08:00-21:00",),
    )
    la = await evaluate(window, facts("14155550100"))
    assert (la.held, la.reasons) == (
        False,
        ("local time 04:00 America/Los_Angeles is not within 08:00-21:00",),
    )
    # a window across midnight
    assert (await evaluate({"local_time": ("22:00", "06:00")}, facts("14155550100"))).held


async def test_all_conditions_must_hold_and_none_is_a_kept_step() -> None:
    both = await evaluate(
        {"calling_code": ("49",), "number_type": ("mobile",)}, facts("4915123456789")
    )
    assert both.held and len(both.reasons) == 2
    assert await evaluate({}, facts("4915123456789")) == type(both)(True, ("no conditions",))

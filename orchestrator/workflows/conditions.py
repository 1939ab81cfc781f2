"""A workflow step's `when = {…}`: each condition against one number (and device IP), with the
reason it holds or not, worded for `workflows simulate` and the start's log.

Conditions are checked cheapest first and stop at the first that fails, so a step skipped by
its calling code never asks an operator about SIM swaps. An operator that can't answer makes
its condition false (the step is skipped), and the reason says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

from orchestrator.operators.base import OperatorUnavailable
from orchestrator.operators.operators_file import Operators
from orchestrator.operators.sandbox import SandboxOperator
from orchestrator.workflows.file import CONDITION_KEYS, NUMBER_TYPES

__all__ = ["Facts", "Verdict", "evaluate", "number_type_name"]

_TYPE_NAMES = {getattr(phonenumbers.PhoneNumberType, name.upper()): name for name in NUMBER_TYPES}


@dataclass
class Facts:
    """What conditions are checked against: one destination number of one start."""

    to: str  # E.164 digits, no "+"
    number: phonenumbers.PhoneNumber | None  # None: a sandbox 990… number, or unreadable
    device_ip: str | None
    operators: Operators
    now: datetime  # aware
    # SIM-swap answers by hours, asked once per start however many steps ask
    _swaps: dict[int, tuple[bool, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    held: bool
    reasons: tuple[str, ...]


def number_type_name(number: phonenumbers.PhoneNumber | None) -> str:
    """phonenumbers' type of the number, lower case ("unknown" for a sandbox number)."""
    if number is None:
        return "unknown"
    return _TYPE_NAMES.get(phonenumbers.number_type(number), "unknown")


async def evaluate(when: Mapping[str, Any], facts: Facts) -> Verdict:
    """Whether every condition of `when` holds, with a reason per condition checked."""
    if not when:
        return Verdict(True, ("no conditions",))
    reasons: list[str] = []
    for key in CONDITION_KEYS:
        if key not in when:
            continue
        held, reason = await _check(key, when[key], facts)
        reasons.append(reason)
        if not held:
            return Verdict(False, tuple(reasons))
    return Verdict(True, tuple(reasons))


async def _check(key: str, value: Any, facts: Facts) -> tuple[bool, str]:
    if key == "calling_code":
        return _calling_code(value, facts)
    if key == "number_type":
        return _number_type(value, facts)
    if key == "device_ip_covered":
        covered, why = _device_ip_covered(facts)
        return covered is value, why
    if key == "sim_swap_within_hours":
        return await _sim_swap(value, facts)
    return _local_time(value, facts)


def _calling_code(codes: tuple[str, ...], facts: Facts) -> tuple[bool, str]:
    listed = "[" + ", ".join(codes) + "]"
    if facts.number is None:
        # a sandbox 990… number has no country: its code is what it starts with
        code = next((c for c in codes if facts.to.startswith(c)), facts.to[:3])
    else:
        code = str(facts.number.country_code)
    if code in codes:
        return True, f"calling code {code} is in {listed}"
    return False, f"calling code {code} is not in {listed}"


def _number_type(types: tuple[str, ...], facts: Facts) -> tuple[bool, str]:
    actual = number_type_name(facts.number)
    listed = ", ".join(types)
    # phonenumbers can't tell some countries' (e.g. the US's) mobile and fixed lines apart
    either = actual == "fixed_line_or_mobile" and bool({"mobile", "fixed_line"} & set(types))
    if actual in types or either:
        return True, f"number type {actual} is one of {listed}"
    return False, f"number type {actual} is not one of {listed}"


def _device_ip_covered(facts: Facts) -> tuple[bool, str]:
    """Covered: some operator covers the number, and the device IP is on a mobile network. The
    sandbox operator knows its network by its IP table; a CAMARA operator can't be asked about
    an IP before the device's own request reaches it, so one covering the number counts."""
    operator = facts.operators.for_number(facts.to)
    if operator is None:
        return False, f"no operator covers +{facts.to}"
    if not isinstance(operator, SandboxOperator):
        return True, (
            f"operator {operator.name} covers +{facts.to} (a CAMARA operator can't be asked "
            "about the device IP beforehand: counted as covered)"
        )
    if facts.device_ip is None:
        return False, "no device IP given"
    if operator.table.msisdn_for(facts.device_ip) is None:
        return False, f"device IP {facts.device_ip} is not on {operator.name}'s mobile network"
    return True, f"device IP {facts.device_ip} is on {operator.name}'s mobile network"


async def _sim_swap(hours: int, facts: Facts) -> tuple[bool, str]:
    cached = facts._swaps.get(hours)
    if cached is not None:
        return cached
    operator = facts.operators.for_number(facts.to, sim_swap=True)
    if operator is None:
        answer = (False, f"no operator answers SIM Swap for +{facts.to}: condition false")
    else:
        try:
            swapped = await operator.sim_swapped(facts.to, hours)
        except OperatorUnavailable as exc:
            answer = (
                False,
                f"operator {operator.name} can't answer SIM Swap ({exc.reason}): condition false",
            )
        else:
            answer = (
                swapped,
                f"the SIM {'changed' if swapped else 'did not change'} within {hours} h "
                f"({operator.name})",
            )
    facts._swaps[hours] = answer
    return answer


def _local_time(value: tuple[str, str], facts: Facts) -> tuple[bool, str]:
    start, end = (time.fromisoformat(t) for t in value)
    span = f"{value[0]}-{value[1]}"
    zones = _zones(facts.number)
    if not zones:
        return False, f"the number's time zone is unknown (wanted {span}): condition false"
    outside: list[str] = []
    shown: list[str] = []
    for zone in zones:
        local = facts.now.astimezone(zone).time().replace(second=0, microsecond=0)
        shown.append(f"{local:%H:%M} {zone.key}")
        inside = start <= local < end if start <= end else (local >= start or local < end)
        if not inside:
            outside.append(zone.key)
    clocks = ", ".join(shown)
    if outside:
        return False, f"local time {clocks} is not within {span}"
    return True, f"local time {clocks} is within {span}"


def _zones(number: phonenumbers.PhoneNumber | None) -> list[ZoneInfo]:
    """The number's time zones (a country with several: all of them must be within)."""
    if number is None:
        return []
    found: list[ZoneInfo] = []
    for name in phone_timezones.time_zones_for_number(number):
        try:
            found.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue  # "Etc/Unknown" and names this system's tz database lacks
    return found

"""Phone numbers: what counts as a valid destination, and the country behind it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

__all__ = [
    "Msisdn",
    "is_sandbox_number",
    "number_of",
    "parse_msisdn",
    "parse_number",
    "region_of",
    "region_of_number",
]

_DIGITS = re.compile(r"^[1-9]\d{6,14}$")


def is_sandbox_number(msisdn: str) -> bool:
    """Vonage's virtual-operator range: numbers starting 990 (no real country uses it)."""
    return msisdn.startswith("990") and _DIGITS.match(msisdn) is not None


@dataclass(frozen=True, slots=True)
class Msisdn:
    """A destination number parsed once: its digits and, unless a sandbox number, the parse."""

    digits: str
    number: phonenumbers.PhoneNumber | None

    @property
    def region(self) -> str | None:
        return None if self.number is None else region_of_number(self.number)


def parse_number(value: str, *, sandbox: bool) -> Msisdn | None:
    """E.164 digits without '+' when `phonenumbers` calls the number possible, else None."""
    if not _DIGITS.match(value):
        return None
    if sandbox and is_sandbox_number(value):
        return Msisdn(value, None)
    try:
        number = phonenumbers.parse("+" + value)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return Msisdn(value, number)


def parse_msisdn(value: str, *, sandbox: bool) -> str | None:
    """E.164 digits without '+' when `phonenumbers` calls the number possible, else None."""
    parsed = parse_number(value, sandbox=sandbox)
    return None if parsed is None else parsed.digits


def number_of(msisdn: str) -> phonenumbers.PhoneNumber | None:
    """The parse of E.164 digits (without '+'), or None when phonenumbers cannot read them."""
    try:
        return phonenumbers.parse("+" + msisdn)
    except phonenumbers.NumberParseException:
        return None


def region_of(msisdn: str) -> str | None:
    """ISO region code of a number (GB, US, ...), or None when unknown."""
    try:
        number = phonenumbers.parse("+" + msisdn)
    except phonenumbers.NumberParseException:
        return None
    return region_of_number(number)


def region_of_number(number: phonenumbers.PhoneNumber) -> str | None:
    """ISO region code of a parsed number (GB, US, ...), or None when unknown."""
    # invalid-but-possible numbers (e.g. UK drama ranges) still tell their country by prefix
    region = phonenumbers.region_code_for_number(number) or (
        phonenumbers.region_code_for_country_code(number.country_code or 0)
    )
    return region if region and region != "ZZ" else None

"""Line-type and carrier lookup from phonenumbers' offline metadata (no network)."""

from __future__ import annotations

from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberType, carrier

__all__ = ["carrier_lookup", "is_landline"]

_TYPES = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "landline",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "mobile",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.TOLL_FREE: "landline",
    PhoneNumberType.PREMIUM_RATE: "landline",
    PhoneNumberType.SHARED_COST: "landline",
    PhoneNumberType.PERSONAL_NUMBER: "mobile",
    PhoneNumberType.PAGER: "mobile",
    PhoneNumberType.UAN: "landline",
    PhoneNumberType.VOICEMAIL: "landline",
}


def carrier_lookup(msisdn: str) -> dict[str, Any]:
    """Twilio's `lookup.carrier` shape. MCC/MNC are not in phonenumbers' data, so they stay null."""
    try:
        number = phonenumbers.parse("+" + msisdn)
    except phonenumbers.NumberParseException:
        return {
            "carrier": {
                "mobile_country_code": None,
                "mobile_network_code": None,
                "name": None,
                "type": None,
                "error_code": 60600,
            }
        }
    kind = _TYPES.get(phonenumbers.number_type(number))
    name = carrier.name_for_number(number, "en") or None
    return {
        "carrier": {
            "mobile_country_code": None,
            "mobile_network_code": None,
            "name": name,
            "type": kind,
            "error_code": None,
        }
    }


def is_landline(msisdn: str) -> bool:
    return bool(carrier_lookup(msisdn)["carrier"]["type"] == "landline")

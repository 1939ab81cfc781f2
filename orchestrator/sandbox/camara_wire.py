"""CAMARA's wire rules for the sandbox operator's APIs: errors, x-correlator, request bodies.

From CAMARA_common.yaml and the Number Verification / SIM Swap definitions: every error is
`{status, code, message}`; a valid `x-correlator` request header is echoed on the response; a
body is one JSON object whose properties are exactly the ones the operation defines (an unknown
property, a wrong type or a pattern miss is 400 INVALID_ARGUMENT).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CORRELATOR_HEADER",
    "CamaraError",
    "NumberCheck",
    "SwapQuery",
    "correlator_of",
    "parse_body",
    "parse_swap_query",
    "parse_verify_body",
]

CORRELATOR_HEADER = "x-correlator"
_CORRELATOR = re.compile(r"^[a-zA-Z0-9\-_:;./<>{}]{0,256}$")
_E164 = re.compile(r"^\+[1-9][0-9]{4,14}$")
_SHA256_HEX = re.compile(r"^[a-fA-F0-9]{64}$")
MAX_AGE_DEFAULT = 240
MAX_AGE_RANGE = (1, 2400)


class CamaraError(Exception):
    """A CAMARA error response; `message` is safe to show the caller."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "message": self.message}


def invalid(message: str) -> CamaraError:
    return CamaraError(400, "INVALID_ARGUMENT", message)


UNAUTHENTICATED = (
    "Request not authenticated due to missing, invalid, or expired credentials. "
    "A new authentication is required."
)
PERMISSION_DENIED = "Client does not have sufficient permissions to perform this action."
NOT_BY_NETWORK = "Client must authenticate via the mobile network to use this service"


def unauthenticated() -> CamaraError:
    return CamaraError(401, "UNAUTHENTICATED", UNAUTHENTICATED)


def permission_denied() -> CamaraError:
    return CamaraError(403, "PERMISSION_DENIED", PERMISSION_DENIED)


def not_by_network() -> CamaraError:
    return CamaraError(
        403, "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK", NOT_BY_NETWORK
    )


def correlator_of(value: str | None) -> str | None:
    """The request's correlator when it matches CAMARA's pattern; CamaraError 400 when not."""
    if value is None:
        return None
    if not _CORRELATOR.match(value):
        raise invalid("x-correlator does not match the CAMARA pattern")
    return value


def parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    """The request's JSON object; 415 for another media type, 400 for anything but an object."""
    if content_type != "application/json":
        raise CamaraError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "The server refuses to accept the request because the payload format is in an "
            "unsupported format.",
        )
    try:
        data = json.loads(raw) if raw else None
    # bad UTF-8, over-long integers and deep nesting are all the caller's malformed JSON
    except (ValueError, RecursionError):
        raise invalid("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.")
    return data


def _only(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        # name no more than the first few: the message stays short and bounded
        names = ", ".join(sorted(str(k)[:40] for k in unknown)[:3])
        raise invalid(f"Unknown property in the request body: {names}")


def _phone(data: dict[str, Any], name: str = "phoneNumber") -> str | None:
    value = data.get(name)
    if value is None and name not in data:
        return None
    if not isinstance(value, str) or not _E164.match(value):
        raise invalid(f"{name} must be an E.164 number with a leading '+'")
    return value


@dataclass(frozen=True)
class NumberCheck:
    """A /verify body: exactly one of a plain or a SHA-256-hashed E.164 number (with '+')."""

    phone_number: str | None
    hashed_phone_number: str | None

    def matches(self, msisdn: str) -> bool:
        number = "+" + msisdn
        if self.phone_number is not None:
            return self.phone_number == number
        digest = hashlib.sha256(number.encode()).hexdigest()
        return digest == (self.hashed_phone_number or "").lower()


def parse_verify_body(data: dict[str, Any]) -> NumberCheck:
    _only(data, {"phoneNumber", "hashedPhoneNumber"})
    if len(data) != 1:
        raise invalid("Provide exactly one of phoneNumber or hashedPhoneNumber.")
    phone = _phone(data)
    hashed = data.get("hashedPhoneNumber")
    if phone is None:
        if not isinstance(hashed, str) or not _SHA256_HEX.match(hashed):
            raise invalid("hashedPhoneNumber must be the SHA-256 hex digest of the +E.164 number")
        return NumberCheck(None, hashed)
    return NumberCheck(phone, None)


@dataclass(frozen=True)
class SwapQuery:
    phone_number: str | None
    max_age: int


def parse_swap_query(data: dict[str, Any], *, check: bool) -> SwapQuery:
    """A /check body `{phoneNumber?, maxAge?}` or a /retrieve-date body `{phoneNumber?}`."""
    _only(data, {"phoneNumber", "maxAge"} if check else {"phoneNumber"})
    phone = _phone(data)
    max_age = data.get("maxAge", MAX_AGE_DEFAULT)
    # JSON true is a Python int: refuse it explicitly, as a schema validator would
    if not isinstance(max_age, int) or isinstance(max_age, bool):
        raise invalid("maxAge must be an integer number of hours")
    low, high = MAX_AGE_RANGE
    if not low <= max_age <= high:
        raise invalid(f"maxAge must be between {low} and {high} hours")
    return SwapQuery(phone, max_age)

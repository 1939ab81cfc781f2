"""Reading Twilio's form-encoded PascalCase parameters, with 60200 errors naming the parameter."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from multidict import MultiMapping

from orchestrator.domain import errors

__all__ = ["Form"]

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
MAX_VALUE = 4096


def invalid(name: str) -> errors.InvalidParameters:
    return errors.InvalidParameters([(name, f"Invalid parameter: {name}")])


class Form:
    """Typed access to a request's form fields; every bad value raises InvalidParameters(name)."""

    def __init__(self, data: MultiMapping[Any]) -> None:
        self._data = data

    def has(self, name: str) -> bool:
        return name in self._data

    def text(
        self,
        name: str,
        *,
        required: bool = False,
        max_len: int = MAX_VALUE,
        pattern: str | None = None,
    ) -> str | None:
        value = self._data.get(name)
        if value is None or value == "":
            if required:
                raise invalid(name)
            return None
        if not isinstance(value, str) or len(value) > max_len:
            raise invalid(name)
        if pattern is not None and not re.fullmatch(pattern, value):
            raise invalid(name)
        return value

    def texts(self, name: str, *, max_len: int = MAX_VALUE) -> list[str]:
        values = self._data.getall(name, [])
        if not all(isinstance(v, str) and 0 < len(v) <= max_len for v in values):
            raise invalid(name)
        return [str(v) for v in values]

    def boolean(self, name: str) -> bool | None:
        value = self.text(name, max_len=8)
        if value is None:
            return None
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise invalid(name)

    def integer(self, name: str, lo: int, hi: int) -> int | None:
        value = self.text(name, max_len=12)
        if value is None:
            return None
        if not re.fullmatch(r"-?[0-9]+", value) or not lo <= int(value) <= hi:
            raise invalid(name)
        return int(value)

    def json_object(self, name: str, *, string_values: bool = False) -> dict[str, Any] | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            raise invalid(name) from None
        if not isinstance(parsed, dict):
            raise invalid(name)
        if string_values and not all(isinstance(v, str | int | float) for v in parsed.values()):
            raise invalid(name)
        return parsed

    def ip(self, name: str) -> str | None:
        value = self.text(name, max_len=64)
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise invalid(name) from None

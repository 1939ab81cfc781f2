"""Timestamps as the dialects write them."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso_ms", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_ms(value: datetime) -> str:
    """`2020-01-01T14:00:00.032Z`: UTC, millisecond precision, as Vonage's callbacks carry."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"

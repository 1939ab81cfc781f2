"""Handoff tokens and URLs: HMACs of the request id, so nothing is stored and no URL guessed.

Two tokens per verification. The desktop's (in `handoff_url`) opens the desktop page, its
status (which carries the device's code) and "text me a link". The phone's (in the QR code and
the texted link) opens only the phone and done pages, so whoever sees the QR code or the SMS
never holds what reads the code.
"""

from __future__ import annotations

import hmac
from typing import Literal

from orchestrator.domain.transition import CodeTools

__all__ = ["Audience", "desktop_url", "done_url", "phone_url", "token", "valid"]

Audience = Literal["desktop", "phone"]
# hash_code(a, b) is HMAC-SHA256(service hash key, f"{a}:{b}"): "handoff:<request id>" etc.
_PURPOSE: dict[Audience, str] = {"desktop": "handoff", "phone": "handoff-phone"}


def token(tools: CodeTools, request_id: str, audience: Audience = "desktop") -> str:
    """The audience's token, cut to 128 bits: unguessable, and the same in every process."""
    return tools.hash_code(_PURPOSE[audience], request_id)[:32]


def valid(tools: CodeTools, request_id: str, candidate: str, audience: Audience) -> bool:
    """Constant-time comparison of a presented token with the request's own."""
    expected = token(tools, request_id, audience)
    return hmac.compare_digest(expected.encode(), candidate[:64].encode())


def _base(public_url: str, request_id: str) -> str:
    return f"{public_url.rstrip('/')}/v2/verify/{request_id}/handoff"


def desktop_url(public_url: str, tools: CodeTools, request_id: str) -> str:
    """The `handoff_url` of a start response: the desktop page."""
    return f"{_base(public_url, request_id)}?t={token(tools, request_id)}"


def phone_url(public_url: str, tools: CodeTools, request_id: str) -> str:
    """The phone page the QR code and the texted link carry."""
    return f"{_base(public_url, request_id)}/phone?t={token(tools, request_id, 'phone')}"


def done_url(public_url: str, tools: CodeTools, request_id: str) -> str:
    """Where the phone lands after the operator's last hop."""
    return f"{_base(public_url, request_id)}/done?t={token(tools, request_id, 'phone')}"

"""SMPP 3.4 (`kind = "smpp"`): our own PDU codec, GSM-7/UCS-2 text, and an asyncio session."""

from __future__ import annotations

from workers.providers.smpp.provider import SmppProvider

__all__ = ["SmppProvider"]

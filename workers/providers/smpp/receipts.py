"""SMPP delivery receipts (deliver_sm with esm_class 0x04) to the workflow's Receipt.

The receipt text is the de-facto format of SMPP 3.4 Appendix B, `id:… sub:… dlvrd:… submit
date:… done date:… stat:DELIVRD err:000 text:…`; SMSCs also (or only) carry the TLVs
receipted_message_id and message_state. The text is preferred for the error code it carries; the
TLVs fill in what the text lacks.
"""

from __future__ import annotations

import re

from orchestrator.delivery.receipts import Receipt, ReceiptStatus
from workers.providers.smpp.pdu import (
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    ShortMessage,
)

__all__ = ["ESM_CLASS_RECEIPT", "is_receipt", "parse_receipt_text", "receipt_from_deliver_sm"]

ESM_CLASS_RECEIPT = 0x04  # message type bits 2-5: SMSC delivery receipt

_STATUS: dict[str, ReceiptStatus] = {
    "DELIVRD": "delivered",
    "ENROUTE": "sent",
    "ACCEPTD": "sent",
    "UNDELIV": "failed",
    "REJECTD": "failed",
    "EXPIRED": "failed",
    "DELETED": "failed",
    "UNKNOWN": "failed",
}
# message_state TLV values (SMPP 3.4 5.2.28) in the text's words
_STATE_WORDS = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
_FIELD = re.compile(r"(?i)\b(id|stat|err):(\S*)")


def is_receipt(message: ShortMessage) -> bool:
    return message.esm_class & 0x3C == ESM_CLASS_RECEIPT


def _receipt(provider_id: str, word: str, err: str | None) -> Receipt | None:
    status = _STATUS.get(word.upper())
    if not provider_id or status is None:
        return None
    error = err if status == "failed" and err else None
    return Receipt(provider_id=provider_id, status=status, error=error, raw_status=word.upper())


def parse_receipt_text(text: str) -> Receipt | None:
    """The Receipt a receipt text describes; None when it lacks an id or a known stat.

    Only the part before `text:` is read: the original message's first characters follow it
    and could hold anything, `stat:` included.
    """
    head = re.split(r"(?i)\btext:", text, maxsplit=1)[0]
    fields: dict[str, str] = {}
    for name, value in _FIELD.findall(head):
        fields.setdefault(name.lower(), value)
    return _receipt(fields.get("id", ""), fields.get("stat", ""), fields.get("err"))


def receipt_from_deliver_sm(message: ShortMessage) -> Receipt | None:
    """A deliver_sm's receipt, from its text or its TLVs; None for a mobile-originated SMS or a
    receipt that names no message or no state we know."""
    if not is_receipt(message):
        return None
    text = message.short_message.decode("latin-1")
    parsed = parse_receipt_text(text) if text else None
    tlv_id = message.tlvs.get(TLV_RECEIPTED_MESSAGE_ID, b"").rstrip(b"\x00").decode("latin-1")
    state = message.tlvs.get(TLV_MESSAGE_STATE, b"")
    if parsed is not None:
        if tlv_id and tlv_id != parsed.provider_id:
            # the TLV is the structured field; some SMSCs print the id in another base
            return Receipt(tlv_id, parsed.status, parsed.error, parsed.raw_status)
        return parsed
    if tlv_id and len(state) == 1 and state[0] in _STATE_WORDS:
        return _receipt(tlv_id, _STATE_WORDS[state[0]], None)
    return None

"""From a text to the short_message parts that carry it: coding choice and concatenation.

GSM-7 (data_coding 0) when every character is in the default alphabet, else UCS-2 big-endian
(data_coding 8; characters outside the BMP are UTF-16 surrogate pairs, two units each). A text
that fits one message (160 septets / 70 units) goes whole. A longer one is either split into
parts of 153 septets / 67 units, each behind a concatenation UDH `05 00 03 ref total seq` with
esm_class UDHI (0x40), never cutting an escape pair or a surrogate pair; or, in "payload" mode,
sent in one submit_sm whose message_payload TLV holds it all (the SMSC splits it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orchestrator.delivery import gsm

__all__ = [
    "DATA_CODING_GSM7",
    "DATA_CODING_UCS2",
    "ESM_CLASS_UDHI",
    "Part",
    "encode_text",
    "split_gsm7",
    "split_ucs2",
    "text_parts",
    "udh",
]

DATA_CODING_GSM7 = 0x00
DATA_CODING_UCS2 = 0x08
ESM_CLASS_UDHI = 0x40

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
MAX_PARTS = 255  # the 8-bit reference UDH counts parts in one octet


@dataclass(frozen=True)
class Part:
    """One submit_sm's worth: `payload` set means message_payload TLV, short_message empty."""

    data_coding: int
    esm_class: int
    short_message: bytes
    payload: bytes | None = None


def udh(reference: int, total: int, sequence: int) -> bytes:
    """The concatenated-SMS header, 8-bit reference (IEI 0x00, 3 octets of data)."""
    return bytes([0x05, 0x00, 0x03, reference & 0xFF, total, sequence])


def encode_text(text: str) -> tuple[int, bytes]:
    """(data_coding, octets) for the whole text."""
    if gsm.is_gsm7(text):
        return DATA_CODING_GSM7, gsm.encode(text)
    return DATA_CODING_UCS2, text.encode("utf-16-be")


def split_gsm7(encoded: bytes, limit: int = GSM7_PART) -> list[bytes]:
    """Unpacked GSM-7 in chunks of at most `limit` septets, an escape never left at a chunk's
    end (the character it escapes would start the next part and read as a basic one)."""
    chunks: list[bytes] = []
    start = 0
    while start < len(encoded):
        end = min(start + limit, len(encoded))
        # 0x1B is only ever an escape prefix here (no extension code is 0x1B)
        if end < len(encoded) and encoded[end - 1] == gsm.ESCAPE:
            end -= 1
        chunks.append(encoded[start:end])
        start = end
    return chunks


def split_ucs2(encoded: bytes, limit: int = UCS2_PART) -> list[bytes]:
    """UTF-16-BE in chunks of at most `limit` units, never between a surrogate pair's halves."""
    chunks: list[bytes] = []
    start = 0
    while start < len(encoded):
        end = min(start + 2 * limit, len(encoded))
        if end < len(encoded):
            last_high = encoded[end - 2]
            if 0xD8 <= last_high <= 0xDB:  # a high surrogate: keep it with its low half
                end -= 2
        chunks.append(encoded[start:end])
        start = end
    return chunks


def text_parts(
    text: str, reference: int, long_messages: Literal["udh", "payload"] = "udh"
) -> list[Part]:
    """The submit_sm parts for `text`; `reference` ties concatenated parts together."""
    coding, encoded = encode_text(text)
    single = GSM7_SINGLE if coding == DATA_CODING_GSM7 else UCS2_SINGLE * 2
    if len(encoded) <= single:
        return [Part(coding, 0, encoded)]
    if long_messages == "payload":
        return [Part(coding, 0, b"", payload=encoded)]
    chunks = split_gsm7(encoded) if coding == DATA_CODING_GSM7 else split_ucs2(encoded)
    if len(chunks) > MAX_PARTS:
        raise ValueError(f"text needs {len(chunks)} parts; at most {MAX_PARTS} can be joined")
    total = len(chunks)
    return [
        Part(coding, ESM_CLASS_UDHI, udh(reference, total, seq) + chunk)
        for seq, chunk in enumerate(chunks, start=1)
    ]

"""The GSM 03.38 7-bit default alphabet and its extension table.

A text every character of which is in these tables goes out as data_coding 0, 160 septets a
message; one other character forces UCS-2 and 70. Extension characters (€ [ ] { } ^ ~ | \\ and
form feed) are an escape (0x1B) plus a code, so they cost two septets. SMSCs take data_coding 0
as unpacked septets, one per octet; the SMSC packs them for the air interface.
"""

from __future__ import annotations

__all__ = ["ESCAPE", "decode", "encode", "is_gsm7", "septets"]

ESCAPE = 0x1B

# index = septet value; "\x1b" at 0x1B is the escape to the extension table, not a character
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(_BASIC) == 128

_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_TO_SEPTET = {ch: i for i, ch in enumerate(_BASIC) if i != ESCAPE}
_FROM_EXTENSION = {code: ch for ch, code in _EXTENSION.items()}


def is_gsm7(text: str) -> bool:
    return all(ch in _TO_SEPTET or ch in _EXTENSION for ch in text)


def septets(text: str) -> int:
    """Septets `text` takes in GSM-7 (extension characters count 2); raises for other text."""
    total = 0
    for ch in text:
        if ch in _TO_SEPTET:
            total += 1
        elif ch in _EXTENSION:
            total += 2
        else:
            raise ValueError(f"{ch!r} is not in the GSM 03.38 alphabet")
    return total


def encode(text: str) -> bytes:
    """Unpacked GSM-7: one septet value per octet, escape pairs for the extension table."""
    out = bytearray()
    for ch in text:
        if ch in _TO_SEPTET:
            out.append(_TO_SEPTET[ch])
        elif ch in _EXTENSION:
            out += bytes([ESCAPE, _EXTENSION[ch]])
        else:
            raise ValueError(f"{ch!r} is not in the GSM 03.38 alphabet")
    return bytes(out)


def decode(data: bytes) -> str:
    """The inverse of `encode` (an unknown escape reads as a space, as 03.38 advises)."""
    out: list[str] = []
    escaped = False
    for octet in data:
        if escaped:
            out.append(_FROM_EXTENSION.get(octet, " "))
            escaped = False
        elif octet == ESCAPE:
            escaped = True
        else:
            out.append(_BASIC[octet & 0x7F])
    return "".join(out)

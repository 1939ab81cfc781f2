"""SMPP 3.4 PDUs on the wire: the 16-byte header, the bodies an ESME sends and reads, and TLVs.

Pure bytes in, bytes out (no I/O), so every field layout is tested against hand-computed bytes
from the specification. Only what a transceiver that submits and takes receipts needs is here:
bind_transceiver(_resp), submit_sm(_resp), deliver_sm(_resp), enquire_link(_resp),
unbind(_resp) and generic_nack. Integers are big-endian; strings are C-octet strings (NUL ended).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = [
    "BIND_TRANSCEIVER",
    "BIND_TRANSCEIVER_RESP",
    "DELIVER_SM",
    "DELIVER_SM_RESP",
    "ENQUIRE_LINK",
    "ENQUIRE_LINK_RESP",
    "GENERIC_NACK",
    "HEADER_SIZE",
    "MAX_PDU_SIZE",
    "SUBMIT_SM",
    "SUBMIT_SM_RESP",
    "TLV_MESSAGE_PAYLOAD",
    "TLV_MESSAGE_STATE",
    "TLV_RECEIPTED_MESSAGE_ID",
    "UNBIND",
    "UNBIND_RESP",
    "BindTransceiver",
    "Header",
    "PduError",
    "ShortMessage",
    "decode_bind_resp",
    "decode_header",
    "decode_message_id",
    "decode_tlvs",
    "describe_status",
    "encode_message_id",
    "encode_pdu",
    "encode_tlvs",
    "status_name",
]

HEADER_SIZE = 16
# the spec sets no ceiling; a submit/deliver with a full message_payload stays far below this,
# and a peer announcing more is broken or hostile (we would buffer it all)
MAX_PDU_SIZE = 64 * 1024

GENERIC_NACK = 0x80000000
BIND_TRANSCEIVER = 0x00000009
BIND_TRANSCEIVER_RESP = 0x80000009
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_PAYLOAD = 0x0424
TLV_MESSAGE_STATE = 0x0427

# command_status values of SMPP 3.4 section 5.1.3, so errors name the code as operators know it
_STATUS_NAMES = {
    0x00: "ESME_ROK",
    0x01: "ESME_RINVMSGLEN",
    0x02: "ESME_RINVCMDLEN",
    0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS",
    0x05: "ESME_RALYBND",
    0x06: "ESME_RINVPRTFLG",
    0x07: "ESME_RINVREGDLVFLG",
    0x08: "ESME_RSYSERR",
    0x0A: "ESME_RINVSRCADR",
    0x0B: "ESME_RINVDSTADR",
    0x0C: "ESME_RINVMSGID",
    0x0D: "ESME_RBINDFAIL",
    0x0E: "ESME_RINVPASWD",
    0x0F: "ESME_RINVSYSID",
    0x11: "ESME_RCANCELFAIL",
    0x13: "ESME_RREPLACEFAIL",
    0x14: "ESME_RMSGQFUL",
    0x15: "ESME_RINVSERTYP",
    0x33: "ESME_RINVNUMDESTS",
    0x34: "ESME_RINVDLNAME",
    0x40: "ESME_RINVDESTFLAG",
    0x42: "ESME_RINVSUBREP",
    0x43: "ESME_RINVESMCLASS",
    0x44: "ESME_RCNTSUBDL",
    0x45: "ESME_RSUBMITFAIL",
    0x48: "ESME_RINVSRCTON",
    0x49: "ESME_RINVSRCNPI",
    0x50: "ESME_RINVDSTTON",
    0x51: "ESME_RINVDSTNPI",
    0x53: "ESME_RINVSYSTYP",
    0x54: "ESME_RINVREPFLAG",
    0x55: "ESME_RINVNUMMSGS",
    0x58: "ESME_RTHROTTLED",
    0x61: "ESME_RINVSCHED",
    0x62: "ESME_RINVEXPIRY",
    0x63: "ESME_RINVDFTMSGID",
    0x64: "ESME_RX_T_APPN",
    0x65: "ESME_RX_P_APPN",
    0x66: "ESME_RX_R_APPN",
    0x67: "ESME_RQUERYFAIL",
    0xC0: "ESME_RINVOPTPARSTREAM",
    0xC1: "ESME_ROPTPARNOTALLWD",
    0xC2: "ESME_RINVPARLEN",
    0xC3: "ESME_RMISSINGOPTPARAM",
    0xC4: "ESME_RINVOPTPARAMVAL",
    0xFE: "ESME_RDELIVERYFAILURE",
    0xFF: "ESME_RUNKNOWNERR",
}


class PduError(ValueError):
    """Bytes that are not a well-formed SMPP 3.4 PDU (or a field that cannot be encoded)."""


def status_name(status: int) -> str:
    if status in _STATUS_NAMES:
        return _STATUS_NAMES[status]
    if 0x400 <= status <= 0x4FF:
        return "SMSC_VENDOR_SPECIFIC"
    return "RESERVED"


def describe_status(status: int) -> str:
    """`0x45 ESME_RSUBMITFAIL`: the hex code and its name, as error messages carry them."""
    return f"0x{status:02X} {status_name(status)}"


@dataclass(frozen=True)
class Header:
    length: int
    command_id: int
    status: int
    sequence: int


def encode_pdu(command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    length = HEADER_SIZE + len(body)
    return struct.pack(">IIII", length, command_id, status, sequence) + body


def decode_header(data: bytes) -> Header:
    if len(data) != HEADER_SIZE:
        raise PduError(f"a header is {HEADER_SIZE} octets, got {len(data)}")
    length, command_id, status, sequence = struct.unpack(">IIII", data)
    if length < HEADER_SIZE or length > MAX_PDU_SIZE:
        raise PduError(f"command_length {length} out of range")
    return Header(length, command_id, status, sequence)


def _cstring(value: str, max_octets: int, name: str) -> bytes:
    """A C-octet string; `max_octets` counts the NUL as the spec's field sizes do."""
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError:
        raise PduError(f"{name} must be ASCII") from None
    if b"\x00" in raw or len(raw) + 1 > max_octets:
        raise PduError(f"{name} must be at most {max_octets - 1} characters without NUL")
    return raw + b"\x00"


class _Reader:
    """Walks a body field by field; any overrun is a PduError, never an IndexError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise PduError("body ends inside a field")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise PduError("C-octet string without its NUL")
        value = self.data[self.pos : end].decode("latin-1")
        self.pos = end + 1
        return value

    def octets(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise PduError("body ends inside a field")
        value = self.data[self.pos : self.pos + n]
        self.pos += n
        return value

    def rest(self) -> bytes:
        value = self.data[self.pos :]
        self.pos = len(self.data)
        return value


def encode_tlvs(tlvs: dict[int, bytes]) -> bytes:
    out = bytearray()
    for tag, value in tlvs.items():
        if len(value) > 0xFFFF:
            raise PduError(f"TLV 0x{tag:04X} longer than 65535 octets")
        out += struct.pack(">HH", tag, len(value)) + value
    return bytes(out)


def decode_tlvs(data: bytes) -> dict[int, bytes]:
    tlvs: dict[int, bytes] = {}
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise PduError("truncated TLV header")
        tag, length = struct.unpack_from(">HH", data, pos)
        if pos + 4 + length > len(data):
            raise PduError(f"TLV 0x{tag:04X} overruns the body")
        tlvs[tag] = data[pos + 4 : pos + 4 + length]
        pos += 4 + length
    return tlvs


@dataclass(frozen=True)
class BindTransceiver:
    """bind_transceiver (SMPP 3.4 4.1.5): one session that both submits and receives."""

    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""

    def encode(self) -> bytes:
        return (
            _cstring(self.system_id, 16, "system_id")
            + _cstring(self.password, 9, "password")
            + _cstring(self.system_type, 13, "system_type")
            + bytes([self.interface_version, self.addr_ton, self.addr_npi])
            + _cstring(self.address_range, 41, "address_range")
        )

    @classmethod
    def decode(cls, body: bytes) -> BindTransceiver:
        r = _Reader(body)
        return cls(r.cstring(), r.cstring(), r.cstring(), r.u8(), r.u8(), r.u8(), r.cstring())


def decode_bind_resp(body: bytes) -> str:
    """The SMSC's system_id; an error response may carry no body at all."""
    if not body:
        return ""
    return _Reader(body).cstring()


@dataclass(frozen=True)
class ShortMessage:
    """submit_sm and deliver_sm share one body layout (SMPP 3.4 4.4.1 and 4.6.1)."""

    source_addr: str
    destination_addr: str
    short_message: bytes = b""
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def encode(self) -> bytes:
        if len(self.short_message) > 254:
            raise PduError("short_message is at most 254 octets (use message_payload)")
        return (
            _cstring(self.service_type, 6, "service_type")
            + bytes([self.source_addr_ton, self.source_addr_npi])
            + _cstring(self.source_addr, 21, "source_addr")
            + bytes([self.dest_addr_ton, self.dest_addr_npi])
            + _cstring(self.destination_addr, 21, "destination_addr")
            + bytes([self.esm_class, self.protocol_id, self.priority_flag])
            + _cstring(self.schedule_delivery_time, 17, "schedule_delivery_time")
            + _cstring(self.validity_period, 17, "validity_period")
            + bytes(
                [
                    self.registered_delivery,
                    self.replace_if_present_flag,
                    self.data_coding,
                    self.sm_default_msg_id,
                    len(self.short_message),
                ]
            )
            + self.short_message
            + encode_tlvs(self.tlvs)
        )

    @classmethod
    def decode(cls, body: bytes) -> ShortMessage:
        r = _Reader(body)
        service_type = r.cstring()
        source_ton, source_npi, source = r.u8(), r.u8(), r.cstring()
        dest_ton, dest_npi, dest = r.u8(), r.u8(), r.cstring()
        esm_class, protocol_id, priority = r.u8(), r.u8(), r.u8()
        schedule, validity = r.cstring(), r.cstring()
        registered, replace, coding, default_id, sm_length = (r.u8() for _ in range(5))
        short_message = r.octets(sm_length)
        return cls(
            source_addr=source,
            destination_addr=dest,
            short_message=short_message,
            service_type=service_type,
            source_addr_ton=source_ton,
            source_addr_npi=source_npi,
            dest_addr_ton=dest_ton,
            dest_addr_npi=dest_npi,
            esm_class=esm_class,
            protocol_id=protocol_id,
            priority_flag=priority,
            schedule_delivery_time=schedule,
            validity_period=validity,
            registered_delivery=registered,
            replace_if_present_flag=replace,
            data_coding=coding,
            sm_default_msg_id=default_id,
            tlvs=decode_tlvs(r.rest()),
        )


def encode_message_id(message_id: str) -> bytes:
    """The body of submit_sm_resp / deliver_sm_resp (deliver_sm_resp's id is always empty)."""
    return _cstring(message_id, 66, "message_id")


def decode_message_id(body: bytes) -> str:
    """submit_sm_resp's message_id; SMSCs omit the body on errors, which reads as ""."""
    if not body:
        return ""
    return _Reader(body).cstring()

"""The SMPP codec without a network: PDU bytes computed by hand from the SMPP 3.4 field tables,
GSM 03.38 coding, splitting into concatenated parts, receipt texts, and the config's checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.delivery import gsm
from orchestrator.delivery.smpp import SmppConfig
from workers.providers.smpp.pdu import (
    BIND_TRANSCEIVER,
    ENQUIRE_LINK,
    GENERIC_NACK,
    SUBMIT_SM,
    TLV_MESSAGE_PAYLOAD,
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    BindTransceiver,
    PduError,
    ShortMessage,
    decode_bind_resp,
    decode_header,
    decode_message_id,
    decode_tlvs,
    describe_status,
    encode_message_id,
    encode_pdu,
    encode_tlvs,
)
from workers.providers.smpp.receipts import parse_receipt_text, receipt_from_deliver_sm
from workers.providers.smpp.text import split_gsm7, text_parts, udh

# ---- PDUs ----


def test_enquire_link_is_a_bare_header() -> None:
    wire = encode_pdu(ENQUIRE_LINK, 1)
    assert wire == bytes.fromhex("00000010 00000015 00000000 00000001")
    header = decode_header(wire)
    assert (header.length, header.command_id, header.status, header.sequence) == (16, 0x15, 0, 1)


def test_generic_nack_carries_status_and_sequence() -> None:
    wire = encode_pdu(GENERIC_NACK, 0x7FFFFFFF, status=0x03)
    assert wire == bytes.fromhex("00000010 80000000 00000003 7fffffff")


def test_bind_transceiver_bytes() -> None:
    body = BindTransceiver("verify", "s3cret").encode()
    # system_id\0 password\0 system_type\0 interface_version addr_ton addr_npi address_range\0
    assert body == b"verify\x00s3cret\x00\x00\x34\x00\x00\x00"
    wire = encode_pdu(BIND_TRANSCEIVER, 2, body)
    assert wire[:16] == bytes.fromhex("00000023 00000009 00000000 00000002")
    assert BindTransceiver.decode(body) == BindTransceiver("verify", "s3cret")


def test_bind_fields_are_bounded_by_the_spec() -> None:
    with pytest.raises(PduError):
        BindTransceiver("verify", "123456789").encode()  # password: 9 octets with the NUL
    with pytest.raises(PduError):
        BindTransceiver("x" * 16, "pw").encode()  # system_id: 16 octets with the NUL


def test_bind_resp_system_id_or_empty() -> None:
    assert decode_bind_resp(b"perlsmsc\x00") == "perlsmsc"
    assert decode_bind_resp(b"") == ""


def test_submit_sm_bytes() -> None:
    sm = ShortMessage(
        source_addr="ACME",
        destination_addr="447700900001",
        short_message=b"hello",
        source_addr_ton=5,
        source_addr_npi=0,
        dest_addr_ton=1,
        dest_addr_npi=1,
        registered_delivery=1,
    )
    expected = (
        b"\x00"  # service_type ""
        + b"\x05\x00ACME\x00"  # source ton, npi, addr
        + b"\x01\x01447700900001\x00"  # dest ton, npi, addr
        + b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        + b"\x00\x00"  # schedule_delivery_time "", validity_period ""
        + b"\x01\x00\x00\x00"  # registered_delivery, replace_if_present, data_coding, default id
        + b"\x05hello"  # sm_length, short_message
    )
    assert sm.encode() == expected
    wire = encode_pdu(SUBMIT_SM, 7, sm.encode())
    assert wire[:16] == bytes.fromhex(f"{16 + len(expected):08x} 00000004 00000000 00000007")
    assert ShortMessage.decode(expected) == sm


def test_submit_sm_with_message_payload_tlv() -> None:
    sm = ShortMessage("ACME", "4477", tlvs={TLV_MESSAGE_PAYLOAD: b"abc"})
    body = sm.encode()
    assert body.endswith(b"\x00" + bytes.fromhex("0424 0003") + b"abc")  # sm_length 0, then TLV
    assert ShortMessage.decode(body).tlvs == {0x0424: b"abc"}


def test_addresses_are_ascii_and_bounded() -> None:
    with pytest.raises(PduError):
        ShortMessage("ACME", "4477é").encode()
    with pytest.raises(PduError):
        ShortMessage("ACME", "4" * 21).encode()  # destination_addr: 21 octets with the NUL


def test_short_message_over_254_octets_needs_the_payload() -> None:
    with pytest.raises(PduError):
        ShortMessage("ACME", "4477", short_message=b"x" * 255).encode()


def test_submit_sm_resp_and_deliver_sm_resp_bodies() -> None:
    assert decode_message_id(b"abc123\x00") == "abc123"
    assert decode_message_id(b"") == ""  # error responses may carry no body
    assert encode_message_id("") == b"\x00"
    wire = encode_pdu(0x80000004, 9, encode_message_id("abc123"))
    assert wire == bytes.fromhex("00000017 80000004 00000000 00000009") + b"abc123\x00"


def test_deliver_sm_receipt_with_tlvs_decodes() -> None:
    body = (
        b"\x00"
        + b"\x01\x01447700900001\x00"
        + b"\x05\x00ACME\x00"
        + b"\x04\x00\x00"  # esm_class 0x04: a delivery receipt
        + b"\x00\x00"
        + b"\x00\x00\x00\x00"
        + b"\x00"  # sm_length 0: the receipt is in the TLVs only
        + bytes.fromhex("001e 0004")
        + b"abc\x00"
        + bytes.fromhex("0427 0001 02")
    )
    sm = ShortMessage.decode(body)
    assert sm.esm_class == 0x04 and sm.short_message == b""
    assert sm.tlvs == {TLV_RECEIPTED_MESSAGE_ID: b"abc\x00", TLV_MESSAGE_STATE: b"\x02"}
    receipt = receipt_from_deliver_sm(sm)
    assert receipt is not None
    assert (receipt.provider_id, receipt.status, receipt.raw_status) == (
        "abc",
        "delivered",
        "DELIVRD",
    )


def test_tlv_round_trip_and_truncation() -> None:
    tlvs = {0x001E: b"id\x00", 0x0427: b"\x05"}
    data = encode_tlvs(tlvs)
    assert data == bytes.fromhex("001e 0003") + b"id\x00" + bytes.fromhex("0427 0001 05")
    assert decode_tlvs(data) == tlvs
    with pytest.raises(PduError):
        decode_tlvs(data[:-1])
    with pytest.raises(PduError):
        decode_tlvs(b"\x00\x1e\x00")


def test_bad_headers_and_bodies_are_pdu_errors() -> None:
    with pytest.raises(PduError):
        decode_header(bytes.fromhex("0000000f 00000015 00000000 00000001"))  # length < 16
    with pytest.raises(PduError):
        decode_header(bytes.fromhex("7fffffff 00000015 00000000 00000001"))  # absurdly long
    with pytest.raises(PduError):
        ShortMessage.decode(b"\x00\x05\x00ACME")  # source_addr without its NUL
    with pytest.raises(PduError):
        ShortMessage.decode(b"\x00\x05\x00A\x00\x01\x01B\x00" + b"\x00" * 8 + b"\x09abc")


def test_status_names() -> None:
    assert describe_status(0x45) == "0x45 ESME_RSUBMITFAIL"
    assert describe_status(0x0E) == "0x0E ESME_RINVPASWD"
    assert describe_status(0x58) == "0x58 ESME_RTHROTTLED"
    assert describe_status(0x400) == "0x400 SMSC_VENDOR_SPECIFIC"


# ---- GSM 03.38 ----


def test_gsm7_basic_table_positions() -> None:
    # the default alphabet is not ASCII: "@" is 0x00, "$" 0x02, "¤" takes 0x24
    assert gsm.encode("@$£_") == bytes([0x00, 0x02, 0x01, 0x11])
    assert gsm.encode("Hi 1") == b"Hi 1"
    assert gsm.encode("ÄÖÑÜ§¿äöñüà") == bytes(
        [0x5B, 0x5C, 0x5D, 0x5E, 0x5F, 0x60, 0x7B, 0x7C, 0x7D, 0x7E, 0x7F]
    )


def test_gsm7_extension_table_costs_two_septets() -> None:
    assert gsm.encode("€") == bytes([0x1B, 0x65])
    assert gsm.encode("[]") == bytes([0x1B, 0x3C, 0x1B, 0x3E])
    assert gsm.encode("{}\\^~|") == bytes.fromhex("1b28 1b29 1b2f 1b14 1b3d 1b40")
    assert gsm.septets("[€]") == 6
    assert gsm.septets("code 1234") == 9


def test_gsm7_detection() -> None:
    assert gsm.is_gsm7("Grüße, Ñoño! Your code: 1234 (€5)")
    assert not gsm.is_gsm7("Ñandú")  # ú is not in the table (ù is)
    assert gsm.is_gsm7("ΔΦΓΛΩΠΨΣΘΞ")  # the capital Greek letters the table holds
    assert not gsm.is_gsm7("δ")  # lower-case Greek is not
    assert not gsm.is_gsm7("ç")  # only the capital Ç is in the table
    assert not gsm.is_gsm7("😀")
    assert not gsm.is_gsm7("`")
    with pytest.raises(ValueError):
        gsm.septets("ç")


def test_gsm7_round_trip() -> None:
    text = "@£$¥ èéùìò Ç\nØø\rÅå Δ_ ÆæßÉ !\"#¤%&'()*+,-./ 09:;<=>? ¡AZ §¿az äöñüà €[]{}^~|\\\f"
    assert gsm.decode(gsm.encode(text)) == text


# ---- choosing the coding and splitting ----


def test_single_messages_up_to_160_septets_and_70_units() -> None:
    (part,) = text_parts("a" * 160, reference=1)
    assert (part.data_coding, part.esm_class, len(part.short_message)) == (0, 0, 160)
    (part,) = text_parts("δ" * 70, reference=1)
    assert (part.data_coding, part.esm_class) == (8, 0)
    assert part.short_message == "δ".encode("utf-16-be") * 70


def test_gsm7_splits_at_153_septets_with_udh() -> None:
    parts = text_parts("a" * 161, reference=0x42)
    assert len(parts) == 2
    assert all(p.esm_class == 0x40 and p.data_coding == 0 for p in parts)
    assert parts[0].short_message == bytes.fromhex("050003420201") + b"a" * 153
    assert parts[1].short_message == bytes.fromhex("050003420202") + b"a" * 8


def test_extension_characters_count_double_for_the_limit() -> None:
    # 160 characters, but "€" takes two septets: 161 septets do not fit one message
    assert len(text_parts("a" * 159 + "€", reference=1)) == 2
    assert len(text_parts("a" * 158 + "€", reference=1)) == 1


def test_an_escape_pair_is_never_cut() -> None:
    encoded = gsm.encode("a" * 152 + "€" + "b" * 10)
    first, second = split_gsm7(encoded)
    assert first == b"a" * 152  # the escape would have been octet 153: it moves on
    assert second == bytes([0x1B, 0x65]) + b"b" * 10


def test_ucs2_splits_at_67_units() -> None:
    parts = text_parts("δ" * 71, reference=7)
    assert [len(p.short_message) - 6 for p in parts] == [134, 8]
    assert parts[0].short_message[:6] == udh(7, 2, 1)
    assert all(p.data_coding == 8 and p.esm_class == 0x40 for p in parts)


def test_surrogate_pairs_stay_whole() -> None:
    (single,) = text_parts("Code 1234 😀", reference=1)
    assert single.data_coding == 8
    assert single.short_message.endswith(bytes.fromhex("d83dde00"))  # U+1F600 as a pair
    parts = text_parts("δ" * 66 + "😀" + "δ" * 5, reference=1)  # 73 units
    first, second = (p.short_message[6:] for p in parts)
    assert len(first) == 66 * 2  # unit 67 would have been the high half: it moves on
    assert second.startswith(bytes.fromhex("d83dde00"))
    assert (first + second).decode("utf-16-be") == "δ" * 66 + "😀" + "δ" * 5


def test_payload_mode_sends_one_pdu() -> None:
    (part,) = text_parts("a" * 400, reference=1, long_messages="payload")
    assert (part.short_message, part.esm_class, part.data_coding) == (b"", 0, 0)
    assert part.payload == b"a" * 400


def test_too_many_parts() -> None:
    with pytest.raises(ValueError):
        text_parts("a" * 153 * 256, reference=1)


def test_udh_bytes() -> None:
    assert udh(0x1FF, 3, 2) == bytes([0x05, 0x00, 0x03, 0xFF, 0x03, 0x02])


# ---- receipt texts ----

RECEIPT = (
    "id:1234567890 sub:001 dlvrd:001 submit date:2512041200 done date:2512041201 "
    "stat:DELIVRD err:000 text:Your code is 1234"
)


@pytest.mark.parametrize(
    ("stat", "status"),
    [
        ("DELIVRD", "delivered"),
        ("ENROUTE", "sent"),
        ("ACCEPTD", "sent"),
        ("UNDELIV", "failed"),
        ("REJECTD", "failed"),
        ("EXPIRED", "failed"),
        ("DELETED", "failed"),
        ("UNKNOWN", "failed"),
    ],
)
def test_receipt_statuses(stat: str, status: str) -> None:
    receipt = parse_receipt_text(RECEIPT.replace("DELIVRD", stat).replace("err:000", "err:013"))
    assert receipt is not None
    assert (receipt.provider_id, receipt.status, receipt.raw_status) == ("1234567890", status, stat)
    assert receipt.error == ("013" if status == "failed" else None)


def test_receipt_text_after_text_is_ignored() -> None:
    sneaky = "id:abc sub:001 dlvrd:000 stat:UNDELIV err:021 text:stat:DELIVRD id:zzz"
    receipt = parse_receipt_text(sneaky)
    assert receipt is not None
    assert (receipt.provider_id, receipt.status, receipt.error) == ("abc", "failed", "021")


def test_receipt_text_lower_case_and_broken() -> None:
    receipt = parse_receipt_text("id:7f sub:001 dlvrd:001 stat:delivrd err:000")
    assert receipt is not None and receipt.status == "delivered"
    assert parse_receipt_text("sub:001 stat:DELIVRD") is None  # no id
    assert parse_receipt_text("id:1 stat:WHATEVER") is None  # no known state
    assert parse_receipt_text("") is None


def test_deliver_sm_that_is_not_a_receipt() -> None:
    mo = ShortMessage("447700900001", "ACME", short_message=RECEIPT.encode(), esm_class=0)
    assert receipt_from_deliver_sm(mo) is None


def test_receipt_tlv_id_wins_over_the_text() -> None:
    sm = ShortMessage(
        "447700900001",
        "ACME",
        short_message=RECEIPT.encode(),
        esm_class=0x04,
        tlvs={TLV_RECEIPTED_MESSAGE_ID: b"499602D2\x00"},  # the same id, printed in hex
    )
    receipt = receipt_from_deliver_sm(sm)
    assert receipt is not None
    assert (receipt.provider_id, receipt.status) == ("499602D2", "delivered")


# ---- configuration ----


def _config(**kw: object) -> SmppConfig:
    values: dict[str, object] = {
        "kind": "smpp",
        "host": "smsc.example.net",
        "system_id": "verify",
        "password": "s3cret",
        "source_addr": "ACME",
    }
    values.update(kw)
    return SmppConfig.model_validate(values)


def test_config_defaults_and_ton_npi() -> None:
    config = _config()
    assert (config.port, config.window, config.timeout_seconds) == (2775, 10, 10)
    assert config.channels == ["sms"] and config.registered_delivery is True
    assert config.long_messages == "udh"
    assert config.source_ton_npi() == (5, 0)
    numeric = _config(source_addr="+447700900000")
    assert numeric.source_ton_npi() == (1, 1) and numeric.source() == "447700900000"
    assert _config(source_addr_ton=0, source_addr_npi=9).source_ton_npi() == (0, 9)


@pytest.mark.parametrize(
    "bad",
    [
        {"password": "123456789"},  # SMPP 3.4: at most 8
        {"system_id": "x" * 16},
        {"source_addr": "TWELVECHARSX"},  # alphanumeric: at most 11
        {"window": 0},
        {"reconnect_min_seconds": 5, "reconnect_max_seconds": 1},
        {"long_messages": "sar"},
        {"api_key": "x"},  # extra="forbid"
    ],
)
def test_config_rejects(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _config(**bad)

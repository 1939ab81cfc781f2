"""SmppProvider against a real SMSC nobody here wrote: Net::SMPP (Debian's libnet-smpp-perl) in
tests/support/smsc.pl. Assertions read the SMSC's own log of the PDUs it decoded, so a field we
encode wrongly shows as what Net::SMPP made of it. Skips only when perl or Net::SMPP is missing
outside CI; under CI (CI=true) that is a failure."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.delivery import gsm
from orchestrator.delivery.receipts import Receipt
from orchestrator.delivery.smpp import SmppConfig
from tests.support.smsc import PerlSmsc, unavailable
from workers.channels.base import OutboundMessage
from workers.providers.base import Accepted, ProviderContext, ProviderError
from workers.providers.smpp import SmppProvider

pytestmark = pytest.mark.timeout(60)

Make = Callable[..., Awaitable[SmppProvider]]


class Receipts:
    """What on_receipt got, with a way to wait for it."""

    def __init__(self) -> None:
        self.got: list[tuple[str, Receipt]] = []
        self.fail = False

    async def __call__(self, name: str, receipt: Receipt) -> None:
        if self.fail:
            raise RuntimeError("the workflow is down")
        self.got.append((name, receipt))

    async def wait(self, count: int = 1, within: float = 10.0) -> list[Receipt]:
        deadline = time.monotonic() + within
        while len(self.got) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"got {len(self.got)} receipts, wanted {count}")
            await asyncio.sleep(0.02)
        return [r for _, r in self.got]


def _need_smsc() -> None:
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the SMPP tests: {reason}")
    pytest.skip(reason)


@pytest.fixture
def smsc(tmp_path: Path) -> Iterator[PerlSmsc]:
    _need_smsc()
    server = PerlSmsc(tmp_path / "smsc").start()
    yield server
    server.stop()


@pytest.fixture
def receipts() -> Receipts:
    return Receipts()


@pytest.fixture
async def make(smsc: PerlSmsc, receipts: Receipts) -> AsyncIterator[Make]:
    """make(**config overrides) -> a started SmppProvider bound to `smsc` (closed at the end)."""
    made: list[SmppProvider] = []
    async with aiohttp.ClientSession() as http:
        context = ProviderContext(
            http=http, public_url="http://127.0.0.1", seal=lambda s: s, on_receipt=receipts
        )

        async def _make(wait_bound: bool = True, **overrides: Any) -> SmppProvider:
            values: dict[str, Any] = {
                "kind": "smpp",
                "host": "127.0.0.1",
                "port": smsc.port,
                "system_id": smsc.system_id,
                "password": smsc.password,
                "source_addr": "ACME",
                "timeout_seconds": 3,
                "reconnect_min_seconds": 0.05,
                "reconnect_max_seconds": 0.2,
            }
            values.update(overrides)
            provider = SmppProvider("smsc-eu", SmppConfig.model_validate(values), context)
            made.append(provider)
            await provider.start()
            if wait_bound:
                assert await provider.session.wait_bound(5), provider.session.last_error
            return provider

        yield _make
        for provider in made:
            await provider.close()


def sms(to: str, text: str = "Your ACME code is 123456") -> OutboundMessage:
    return OutboundMessage(
        id="req1:0",
        tenant="t",
        request_id="req1",
        channel="sms",
        to=to,
        sender="ACME",
        text=text,
        code="123456",
        locale="en-us",
    )


async def _accepted(provider: SmppProvider, message: OutboundMessage) -> str:
    accepted = await provider.send(message)
    assert isinstance(accepted, Accepted) and accepted.provider_id
    return accepted.provider_id


async def test_gsm7_send_and_delivered_receipt(
    make: Make, smsc: PerlSmsc, receipts: Receipts
) -> None:
    provider = await make()
    text = "Your ACME code is 123456 (valid 10 min) @ £5 €"
    message_id = await _accepted(provider, sms("447700900001", text))
    (bind,) = smsc.log("bind_transceiver")
    assert bind["system_id"] == "verify" and bind["ok"] is True
    assert bind["interface_version"] == 0x34
    (submit,) = smsc.log("submit_sm")
    assert submit["data_coding"] == 0 and submit["esm_class"] == 0
    assert submit["short_message"] == gsm.encode(text).hex()
    assert submit["short_message"].startswith("596f7572")  # "Your": GSM-7 letters, unpacked
    assert (submit["dest"], submit["dest_addr_ton"], submit["dest_addr_npi"]) == (
        "447700900001",
        1,
        1,
    )
    assert (submit["source"], submit["source_addr_ton"], submit["source_addr_npi"]) == (
        "ACME",
        5,
        0,
    )
    assert submit["registered_delivery"] == 1
    (receipt,) = await receipts.wait(1)
    assert receipts.got[0][0] == "smsc-eu"
    assert receipt == Receipt(message_id, "delivered", None, "DELIVRD")
    # our deliver_sm_resp reached the SMSC with status 0
    (resp,) = await smsc.wait_for("deliver_sm_resp")
    assert resp["status"] == 0


async def test_ucs2_text_goes_as_data_coding_8(make: Make, smsc: PerlSmsc) -> None:
    provider = await make(source_addr="+447700900999")
    text = "Ο κωδικός σας είναι 123456 😀"  # noqa: RUF001 - Greek, on purpose
    await _accepted(provider, sms("306900000001", text))
    (submit,) = smsc.log("submit_sm")
    assert submit["data_coding"] == 8 and submit["esm_class"] == 0
    assert submit["short_message"] == text.encode("utf-16-be").hex()
    assert "d83dde00" in submit["short_message"]  # the emoji as a surrogate pair
    # a numeric sender goes as international digits
    assert (submit["source"], submit["source_addr_ton"], submit["source_addr_npi"]) == (
        "447700900999",
        1,
        1,
    )


async def test_long_text_in_udh_parts_one_receipt(
    make: Make, smsc: PerlSmsc, receipts: Receipts
) -> None:
    provider = await make()
    text = "Your ACME code is 123456. " * 14  # 364 septets: 3 parts of at most 153
    message_id = await _accepted(provider, sms("447700900001", text))
    parts = smsc.log("submit_sm")
    assert len(parts) == 3
    udhs = [bytes.fromhex(p["short_message"])[:6] for p in parts]
    reference = udhs[0][3]
    assert udhs == [bytes([5, 0, 3, reference, 3, seq]) for seq in (1, 2, 3)]
    assert all(p["esm_class"] == 0x40 and p["data_coding"] == 0 for p in parts)
    joined = b"".join(bytes.fromhex(p["short_message"])[6:] for p in parts)
    assert gsm.decode(joined) == text
    # three DELIVRD receipts from the SMSC, one "delivered" for the message, under part 1's id
    await smsc.wait_for("deliver_sm_resp", 3)
    await asyncio.sleep(0.2)
    assert [r for _, r in receipts.got] == [Receipt(message_id, "delivered", None, "DELIVRD")]


async def test_long_text_fails_once_when_parts_fail(
    make: Make, smsc: PerlSmsc, receipts: Receipts
) -> None:
    provider = await make()
    message_id = await _accepted(provider, sms("447700900013", "x" * 200))
    await smsc.wait_for("deliver_sm_resp", 2)
    await asyncio.sleep(0.2)
    assert [r for _, r in receipts.got] == [Receipt(message_id, "failed", "013", "UNDELIV")]


async def test_long_text_as_message_payload(make: Make, smsc: PerlSmsc) -> None:
    provider = await make(long_messages="payload")
    text = "Κωδικός 123456. " * 10  # 160 UCS-2 units
    await _accepted(provider, sms("306900000001", text))
    (submit,) = smsc.log("submit_sm")
    assert submit["short_message"] == "" and submit["esm_class"] == 0
    assert submit["data_coding"] == 8
    assert submit["message_payload"] == text.encode("utf-16-be").hex()


async def test_undelivered_receipt(make: Make, receipts: Receipts) -> None:
    provider = await make()
    message_id = await _accepted(provider, sms("447700900013"))
    (receipt,) = await receipts.wait(1)
    assert receipt == Receipt(message_id, "failed", "013", "UNDELIV")


async def test_receipt_in_tlvs_only(make: Make, receipts: Receipts) -> None:
    provider = await make()
    message_id = await _accepted(provider, sms("447700900014"))
    (receipt,) = await receipts.wait(1)
    assert (receipt.provider_id, receipt.status, receipt.raw_status) == (
        message_id,
        "failed",
        "UNDELIV",
    )


async def test_no_receipt_asked_none_sent(make: Make, smsc: PerlSmsc, receipts: Receipts) -> None:
    provider = await make(registered_delivery=False)
    await _accepted(provider, sms("447700900001"))
    (submit,) = smsc.log("submit_sm")
    assert submit["registered_delivery"] == 0
    await asyncio.sleep(0.3)
    assert receipts.got == [] and smsc.log("deliver_sm_resp") == []


async def test_failing_receipt_handler_asks_the_smsc_to_retry(
    make: Make, smsc: PerlSmsc, receipts: Receipts
) -> None:
    receipts.fail = True
    provider = await make()
    await _accepted(provider, sms("447700900001"))
    (resp,) = await smsc.wait_for("deliver_sm_resp")
    assert resp["status"] == 0x64  # ESME_RX_T_APPN: temporary, send it again


async def test_submit_refused_names_the_status(make: Make) -> None:
    provider = await make()
    with pytest.raises(ProviderError, match=r"0x45 ESME_RSUBMITFAIL"):
        await provider.send(sms("447700900077"))
    # the session survives a refusal
    await _accepted(provider, sms("447700900001"))


async def test_a_destination_smpp_cannot_carry(make: Make, smsc: PerlSmsc) -> None:
    provider = await make()
    with pytest.raises(ProviderError, match="destination_addr"):
        await provider.send(sms("4" * 25))
    assert smsc.log("submit_sm") == []
    await _accepted(provider, sms("447700900001"))  # and the window slot came back


async def test_hang_fails_within_timeout(make: Make) -> None:
    provider = await make(timeout_seconds=0.5)
    t0 = time.monotonic()
    with pytest.raises(ProviderError, match=r"no submit_sm_resp .* within 0.5s"):
        await provider.send(sms("447700900066"))
    assert 0.4 < time.monotonic() - t0 < 2.0
    await _accepted(provider, sms("447700900001"))  # still bound, window slot returned


async def test_window_bounds_unacknowledged_submits(make: Make, smsc: PerlSmsc) -> None:
    provider = await make(window=3, timeout_seconds=1.0)
    sends = [asyncio.create_task(provider.send(sms("447700900066"))) for _ in range(5)]
    await smsc.wait_for("submit_sm", 3)
    await asyncio.sleep(0.5)
    assert len(smsc.log("submit_sm")) == 3  # the other two wait for a slot
    results = await asyncio.gather(*sends, return_exceptions=True)
    assert all(isinstance(r, ProviderError) for r in results), results
    # timeout_seconds bounds the whole send: the two that never got a slot fail as well
    assert sum("window of 3 full" in str(r) for r in results) == 2
    assert len(smsc.log("submit_sm")) == 3
    # the timed-out submits gave their slots back
    await asyncio.gather(*(_accepted(provider, sms("447700900001")) for _ in range(3)))


async def test_window_many_concurrent_sends(make: Make, smsc: PerlSmsc) -> None:
    provider = await make(window=4)
    ids = await asyncio.gather(*(_accepted(provider, sms(f"4477009{i:05d}")) for i in range(40)))
    assert len(set(ids)) == 40
    assert len(smsc.log("submit_sm")) == 40


async def test_throughput_spaces_submits(make: Make, smsc: PerlSmsc) -> None:
    provider = await make(throughput=20)
    await asyncio.gather(*(_accepted(provider, sms("447700900001")) for _ in range(6)))
    times = [p["t"] for p in smsc.log("submit_sm")]
    assert times[-1] - times[0] >= 5 / 20 - 0.05


async def test_bad_password_is_refused_not_a_crash(make: Make, smsc: PerlSmsc) -> None:
    provider = await make(wait_bound=False, password="wrong")
    with pytest.raises(ProviderError, match=r"0x0E ESME_RINVPASWD") as info:
        await provider.send(sms("447700900001"))
    assert "wrong" not in str(info.value)
    # it keeps trying (with backoff), and never submitted anything
    await smsc.wait_for("bind_transceiver", 2)
    assert all(b["ok"] is False for b in smsc.log("bind_transceiver"))
    assert smsc.log("submit_sm") == []


async def test_unreachable_smsc_does_not_crash_start(make: Make) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    provider = await make(wait_bound=False, port=port, timeout_seconds=1)
    t0 = time.monotonic()
    with pytest.raises(ProviderError, match=r"not bound .*can't bind"):
        await provider.send(sms("447700900001"))
    assert time.monotonic() - t0 < 1.5


async def test_enquire_link_keepalive(make: Make, smsc: PerlSmsc) -> None:
    provider = await make(enquire_link_seconds=0.2)
    await smsc.wait_for("enquire_link", 3, within=5)
    assert provider.bound  # Net::SMPP answered every one
    await _accepted(provider, sms("447700900001"))


async def test_the_smscs_enquire_link_is_answered(make: Make, smsc: PerlSmsc) -> None:
    smsc.stop()
    smsc.enquire_seconds = 1  # Net::SMPP pings an ESME that is quiet for a second
    smsc.start()
    provider = await make()
    await smsc.wait_for("enquire_link_resp", 1, within=5)
    assert provider.bound


async def test_reconnect_after_the_smsc_restarts(make: Make, smsc: PerlSmsc) -> None:
    provider = await make(timeout_seconds=1)
    await _accepted(provider, sms("447700900001"))
    smsc.stop()  # SIGKILL to the SMSC and its connection's child: no unbind, just gone
    with pytest.raises(ProviderError):
        await provider.send(sms("447700900001"))
    assert not provider.bound
    smsc.start()  # the same port
    assert await _bound_soon(provider), provider.session.last_error
    await _accepted(provider, sms("447700900001"))
    assert len(smsc.log("bind_transceiver")) == 2
    assert provider.session.binds == 2


async def _bound_soon(provider: SmppProvider, within: float = 5.0) -> bool:
    for _ in range(int(within / 0.05)):
        if provider.bound:
            return True
        await asyncio.sleep(0.05)
    return provider.bound


async def test_close_unbinds(make: Make, smsc: PerlSmsc) -> None:
    provider = await make()
    await _accepted(provider, sms("447700900001"))
    await provider.close()
    (unbind,) = await smsc.wait_for("unbind")
    assert unbind["seq"] > 0
    assert not provider.bound
    with pytest.raises(ProviderError, match="not bound"):
        await provider.send(sms("447700900001"))
    await asyncio.sleep(0.3)
    assert len(smsc.log("bind_transceiver")) == 1  # closed means closed: no reconnect

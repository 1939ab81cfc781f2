"""Conformance: the official Twilio Python SDK (twilio 9.x), unmodified, drives Verify v2 here.

The only change from talking to Twilio is the base URL (`client.verify.base_url`), with
`client.edge`/`client.region` cleared so the SDK leaves the host alone, and `requests` trusting
the stack's certificate through REQUESTS_CA_BUNDLE (the `stack` fixture exports it).

What a customer migrating from Twilio relies on, and what each test pins:
- Services: create/fetch/update/delete and paging, where the SDK follows `next_page_url` verbatim;
- auth: Account SID + Auth Token and API keys (SK…) both as Basic; a bad pair is 401/20003;
- Verifications on sms/call/email/whatsapp, checks by To or VerificationSid, wrong codes staying
  `pending`, soft-deleted (approved/canceled/failed) verifications answering 404/20404;
- the lifecycle limits: a resend reuses the VE sid and the code, the 6th send is 429/60203,
  the 6th check is 429/60202;
- the SDK's own parsing: datetimes only parse as `YYYY-MM-DDTHH:MM:SSZ`;
- lookup, skip_sms_to_landlines (403/60205) and Locale;
- SNA and `auto` through the sandbox operator, whose device IP table is
  config/sandbox_operator.toml: 100.64.0.0/16 is a handset on +447700900100 and 100.64.1.0/24
  one on +15555550100; a test names the calling device with the X-Sandbox-Device-IP header.

Every test gets its own Service: Twilio's one-pending-verification-per-To lock is per service,
so the fixed SNA number never collides between tests.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client
from twilio.rest.verify.v2.service import ServiceContext, ServiceInstance

from tests.support.processes import Stack, wait_until
from tests.support.twilio import Account, new_account, sdk_client

SNA_NUMBER = "+447700900100"
SNA_DEVICE = "100.64.0.7"  # in 100.64.0.0/16: a handset on SNA_NUMBER
OTHER_DEVICE = "100.64.1.9"  # in 100.64.1.0/24: a handset on +15555550100
UNLISTED_IP = "198.51.100.7"  # TEST-NET-2: in no range of the table
UK_LANDLINE = "+442071838750"
DEVICE_HEADER = "X-Sandbox-Device-IP"
API_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")

# how the SDK's channel names show in send_code_attempts, and in the sandbox outbox
ATTEMPT_CHANNEL = {"sms": "SMS", "call": "CALL", "email": "EMAIL", "whatsapp": "whatsapp"}
OUTBOX_CHANNEL = {"sms": "sms", "call": "voice", "email": "email", "whatsapp": "whatsapp"}


# ---- fixtures and helpers -----------------------------------------------------------------------


class Outbox:
    """The sandbox's record of every message sent for an account, newest first."""

    def __init__(self, stack: Stack, account: Account) -> None:
        self.url = f"{stack.url}/sandbox/v1/messages"
        self.http = requests.Session()
        self.http.auth = (account.sid, account.token)
        self.http.verify = str(stack.cert)

    def messages(self, to: str, sid: str | None = None) -> list[dict[str, Any]]:
        resp = self.http.get(self.url, params={"to": to}, timeout=10)
        resp.raise_for_status()
        found: list[dict[str, Any]] = resp.json()
        return [m for m in found if sid is None or m["request_id"] == sid]

    def wait(self, to: str, sid: str, count: int = 1) -> list[dict[str, Any]]:
        """The first `count` messages of verification `sid`, once they have all been sent."""

        def enough() -> list[dict[str, Any]] | None:
            found = self.messages(to, sid)
            return found if len(found) >= count else None

        result: list[dict[str, Any]] = wait_until(
            enough, timeout=60, what=f"{count} message(s) of {sid} to {to}"
        )
        return result

    def code(self, to: str, sid: str) -> str:
        return str(self.wait(to, sid)[0]["code"])


@pytest.fixture(scope="module")
def account(stack: Stack) -> Account:
    return new_account(stack, "twilio-sdk")


@pytest.fixture(scope="module")
def client(stack: Stack, account: Account) -> Client:
    return sdk_client(stack, account.sid, account.token)


@pytest.fixture(scope="module")
def outbox(stack: Stack, account: Account) -> Outbox:
    return Outbox(stack, account)


@pytest.fixture
def make_service(client: Client) -> Iterator[Callable[..., ServiceContext]]:
    """Fresh services (each with its own pending-verification locks), deleted afterwards."""
    made: list[ServiceContext] = []

    def create(**params: Any) -> ServiceContext:
        created = client.verify.v2.services.create(friendly_name="Conformance", **params)
        context = client.verify.v2.services(created.sid)
        made.append(context)
        return context

    yield create
    for context in made:
        try:
            context.delete()
        except TwilioRestException as exc:
            assert exc.status == 404  # the test deleted it already


@pytest.fixture
def service(make_service: Callable[..., ServiceContext]) -> ServiceContext:
    return make_service()


@pytest.fixture
def phone(number: str) -> str:
    """A fresh UK drama-range number in E.164, as the SDK's callers write it."""
    return "+" + number


def mobile_number() -> str:
    """A fresh number in a UK mobile range (phonenumbers calls +447400… mobile)."""
    return "+447400" + f"{random.randrange(10**6):06d}"


def sid_of(service: ServiceContext) -> str:
    """The VA sid a ServiceContext is bound to."""
    return str(service._solution["sid"])


def rest_error(call: Callable[[], object]) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as info:
        call()
    return info.value


def assert_not_found(call: Callable[[], object]) -> None:
    exc = rest_error(call)
    assert (exc.status, exc.code) == (404, 20404), exc
    assert "was not found" in exc.msg


def device_opens(url: str, stack: Stack, device_ip: str) -> requests.Response:
    """A handset following sna.url through every redirect, as a mobile app does."""
    return requests.get(url, headers={DEVICE_HEADER: device_ip}, verify=str(stack.cert), timeout=10)


def attempt_channels(v: Any) -> list[str]:
    return [a["channel"] for a in v.send_code_attempts]


def assert_utc(value: object) -> None:
    assert isinstance(value, datetime), value
    assert value.tzinfo is not None and value.utcoffset() == UTC.utcoffset(value)


# ---- Services ---------------------------------------------------------------------------------


def test_service_create_fetch_update_delete(client: Client, stack: Stack) -> None:
    created = client.verify.v2.services.create(
        friendly_name="Shop", code_length=8, lookup_enabled=True, custom_code_enabled=True
    )
    assert created.sid.startswith("VA") and len(created.sid) == 34
    assert created.friendly_name == "Shop"
    assert created.code_length == 8
    assert created.lookup_enabled is True and created.custom_code_enabled is True
    assert created.psd2_enabled is False and created.skip_sms_to_landlines is False
    assert created.url == f"{stack.url}/v2/Services/{created.sid}"
    assert created.links["verifications"] == f"{created.url}/Verifications"
    assert created.links["verification_checks"] == f"{created.url}/VerificationCheck"
    assert_utc(created.date_created)
    assert_utc(created.date_updated)

    context = client.verify.v2.services(created.sid)
    fetched = context.fetch()
    assert (fetched.sid, fetched.friendly_name, fetched.code_length) == (created.sid, "Shop", 8)

    updated = context.update(friendly_name="Shop 2", code_length=4, lookup_enabled=False)
    assert (updated.friendly_name, updated.code_length) == ("Shop 2", 4)
    assert updated.lookup_enabled is False
    assert updated.custom_code_enabled is True  # untouched parameters keep their values
    assert updated.date_updated >= created.date_updated
    assert context.fetch().friendly_name == "Shop 2"

    assert context.delete() is True
    assert_not_found(context.fetch)
    assert_not_found(context.delete)
    assert_not_found(lambda: context.update(friendly_name="Gone"))


def test_service_code_length_sets_the_code_size(
    make_service: Callable[..., ServiceContext], outbox: Outbox, phone: str
) -> None:
    service = make_service(code_length=9)
    v = service.verifications.create(to=phone, channel="sms")
    assert re.fullmatch(r"\d{9}", outbox.code(phone, v.sid))


def test_service_list_pages_through_absolute_next_page_urls(stack: Stack) -> None:
    # an account of its own, so the list holds exactly these three services
    account = new_account(stack, "paging")
    client = sdk_client(stack, account.sid, account.token)
    sids = [client.verify.v2.services.create(friendly_name=f"S{i}").sid for i in range(3)]

    first = client.verify.v2.services.page(page_size=1)
    assert len(list(first)) == 1
    assert first.next_page_url is not None
    assert first.next_page_url.startswith(stack.url + "/v2/Services?")

    # list() follows next_page_url verbatim (never through base_url): only absolute URLs work
    listed = client.verify.v2.services.list(page_size=1)
    assert sorted(s.sid for s in listed) == sorted(sids)
    assert len({s.sid for s in listed}) == 3

    last = first.next_page().next_page()
    assert len(list(last)) == 1
    assert last.next_page_url is None
    assert last.next_page() is None

    assert len(client.verify.v2.services.list(limit=2)) == 2
    assert len(client.verify.v2.services.list()) == 3


def test_api_key_credentials_work_as_basic(stack: Stack, account: Account, client: Client) -> None:
    data = stack.cli("accounts", "keys", "create", "--account-sid", account.sid)
    assert isinstance(data, dict)
    key_sid, secret = str(data["sid"]), str(data["secret"])
    assert key_sid.startswith("SK")

    keyed = sdk_client(stack, key_sid, secret, account.sid)
    created = keyed.verify.v2.services.create(friendly_name="Keyed")
    assert created.account_sid == account.sid
    # the same account either way: token and key see each other's services
    assert client.verify.v2.services(created.sid).fetch().friendly_name == "Keyed"
    assert created.sid in {s.sid for s in keyed.verify.v2.services.list()}
    assert keyed.verify.v2.services(created.sid).delete() is True

    wrong = sdk_client(stack, key_sid, secret + "x", account.sid)
    exc = rest_error(lambda: wrong.verify.v2.services.create(friendly_name="Nope"))
    assert (exc.status, exc.code) == (401, 20003)


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(lambda a: (a.sid, a.token + "x"), id="wrong-token"),
        pytest.param(lambda a: ("AC" + "0" * 32, a.token), id="unknown-account"),
        pytest.param(lambda a: ("SK" + "0" * 32, a.token), id="unknown-key"),
    ],
)
def test_bad_credentials_are_401_20003(
    stack: Stack,
    account: Account,
    service: ServiceContext,
    credentials: Callable[[Account], tuple[str, str]],
) -> None:
    username, password = credentials(account)
    bad = sdk_client(stack, username, password, account.sid)
    for call in [
        lambda: bad.verify.v2.services.create(friendly_name="Nope"),
        lambda: bad.verify.v2.services(sid_of(service)).fetch(),
        lambda: bad.verify.v2.services(sid_of(service)).verifications.create(
            to="+447700900555", channel="sms"
        ),
    ]:
        exc = rest_error(call)
        assert (exc.status, exc.code) == (401, 20003), exc
        assert exc.msg.endswith("Authenticate")
    # SDK quirk: a list page that is not 200 raises the base TwilioException, not the REST one
    with pytest.raises(TwilioException) as info:
        bad.verify.v2.services.list()
    assert not isinstance(info.value, TwilioRestException)
    assert info.value.args[1].status_code == 401
    assert info.value.args[1].text and '"code": 20003' in info.value.args[1].text


def test_another_accounts_service_is_not_found(stack: Stack, service: ServiceContext) -> None:
    other = new_account(stack, "other")
    stranger = sdk_client(stack, other.sid, other.token)
    sid = sid_of(service)
    assert_not_found(stranger.verify.v2.services(sid).fetch)
    assert_not_found(
        lambda: stranger.verify.v2.services(sid).verifications.create(
            to="+447700900555", channel="sms"
        )
    )
    assert_not_found(stranger.verify.v2.services(sid).delete)
    assert service.fetch().sid == sid


# ---- Verifications ------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["sms", "call", "email", "whatsapp"])
def test_each_channel_sends_a_code_that_approves(
    service: ServiceContext, outbox: Outbox, stack: Stack, phone: str, channel: str
) -> None:
    to = f"user{random.randrange(10**9)}@example.com" if channel == "email" else phone
    v = service.verifications.create(to=to, channel=channel)
    assert v.sid.startswith("VE") and len(v.sid) == 34
    assert v.service_sid == sid_of(service)
    assert (v.to, v.channel, v.status, v.valid) == (to, channel, "pending", False)
    assert v.sna is None and v.lookup == {}
    assert v.amount is None and v.payee is None
    assert attempt_channels(v) == [ATTEMPT_CHANNEL[channel]]
    assert v.send_code_attempts[0]["attempt_sid"].startswith("VL")
    assert v.url == f"{stack.url}/v2/Services/{v.service_sid}/Verifications/{v.sid}"

    fetched = service.verifications(v.sid).fetch()
    assert (fetched.sid, fetched.status, fetched.to, fetched.channel) == (
        v.sid,
        "pending",
        to,
        channel,
    )

    message = outbox.wait(to, v.sid)[0]
    assert message["channel"] == OUTBOX_CHANNEL[channel]
    code = str(message["code"])
    assert re.fullmatch(r"\d{6}", code)
    if channel != "call":  # a call reads the digits one by one
        assert code in message["text"]

    check = service.verification_checks.create(to=to, code=code)
    assert (check.sid, check.status, check.valid) == (v.sid, "approved", True)
    assert (check.to, check.channel) == (to, channel)


def test_check_by_verification_sid_approves(
    service: ServiceContext, outbox: Outbox, phone: str
) -> None:
    v = service.verifications.create(to=phone, channel="sms")
    check = service.verification_checks.create(
        verification_sid=v.sid, code=outbox.code(phone, v.sid)
    )
    assert (check.sid, check.status, check.valid) == (v.sid, "approved", True)


def test_fetch_by_to_instead_of_sid(service: ServiceContext, phone: str) -> None:
    # the spec's {Sid} also takes the To value ("approveVerificationWithPn")
    v = service.verifications.create(to=phone, channel="sms")
    assert service.verifications(phone).fetch().sid == v.sid
    assert service.verifications(phone).update(status="canceled").status == "canceled"


def test_wrong_code_stays_pending_then_right_code_approves(
    service: ServiceContext, outbox: Outbox, phone: str
) -> None:
    v = service.verifications.create(to=phone, channel="sms")
    code = outbox.code(phone, v.sid)
    wrong = "000000" if code != "000000" else "111111"
    check = service.verification_checks.create(to=phone, code=wrong)
    assert (check.sid, check.status, check.valid) == (v.sid, "pending", False)
    assert service.verifications(v.sid).fetch().status == "pending"
    assert service.verification_checks.create(to=phone, code=code).status == "approved"


def test_after_approval_fetch_check_and_update_are_404(
    service: ServiceContext, outbox: Outbox, phone: str
) -> None:
    v = service.verifications.create(to=phone, channel="sms")
    code = outbox.code(phone, v.sid)
    assert service.verification_checks.create(to=phone, code=code).status == "approved"

    assert_not_found(service.verifications(v.sid).fetch)
    assert_not_found(lambda: service.verification_checks.create(to=phone, code=code))
    assert_not_found(lambda: service.verification_checks.create(verification_sid=v.sid, code=code))
    assert_not_found(lambda: service.verifications(v.sid).update(status="canceled"))
    assert_not_found(lambda: service.verifications(v.sid).update(status="approved"))

    # the number is free again: a new start is a new verification, not a resend
    again = service.verifications.create(to=phone, channel="sms")
    assert again.sid != v.sid
    assert attempt_channels(again) == ["SMS"]


def test_cancel_then_404(service: ServiceContext, outbox: Outbox, phone: str) -> None:
    v = service.verifications.create(to=phone, channel="sms")
    code = outbox.code(phone, v.sid)
    canceled = service.verifications(v.sid).update(status="canceled")
    assert (canceled.sid, canceled.status, canceled.valid) == (v.sid, "canceled", False)

    assert_not_found(service.verifications(v.sid).fetch)
    assert_not_found(lambda: service.verification_checks.create(to=phone, code=code))
    assert_not_found(lambda: service.verifications(v.sid).update(status="approved"))
    again = service.verifications.create(to=phone, channel="sms")
    assert again.sid != v.sid


def test_update_approved_approves_without_a_code(service: ServiceContext, phone: str) -> None:
    v = service.verifications.create(to=phone, channel="sms")
    approved = service.verifications(v.sid).update(status="approved")
    assert (approved.sid, approved.status, approved.valid) == (v.sid, "approved", True)
    assert_not_found(service.verifications(v.sid).fetch)


def test_resend_reuses_the_sid_and_the_code(
    service: ServiceContext, outbox: Outbox, phone: str
) -> None:
    first = service.verifications.create(to=phone, channel="sms")
    second = service.verifications.create(to=phone, channel="call")
    assert second.sid == first.sid
    assert second.channel == "call"
    assert attempt_channels(second) == ["SMS", "CALL"]
    sids = [a["attempt_sid"] for a in second.send_code_attempts]
    assert sids[0] == first.send_code_attempts[0]["attempt_sid"] and len(set(sids)) == 2
    assert attempt_channels(service.verifications(first.sid).fetch()) == ["SMS", "CALL"]

    sent = outbox.wait(phone, first.sid, count=2)
    assert sorted(m["channel"] for m in sent) == ["sms", "voice"]
    assert sent[0]["code"] == sent[1]["code"]
    check = service.verification_checks.create(to=phone, code=str(sent[0]["code"]))
    assert (check.sid, check.status) == (first.sid, "approved")


def test_sixth_send_is_429_60203(service: ServiceContext, outbox: Outbox, phone: str) -> None:
    sids = {service.verifications.create(to=phone, channel="sms").sid for _ in range(5)}
    assert len(sids) == 1
    exc = rest_error(lambda: service.verifications.create(to=phone, channel="sms"))
    assert (exc.status, exc.code) == (429, 60203), exc
    assert exc.msg.startswith("Unable to create record: ")

    # the refused send changed nothing: five attempts, all with one code, which still approves
    (sid,) = sids
    assert len(service.verifications(sid).fetch().send_code_attempts) == 5
    sent = outbox.wait(phone, sid, count=5)
    assert len({m["code"] for m in sent}) == 1
    assert service.verification_checks.create(to=phone, code=str(sent[0]["code"])).status == (
        "approved"
    )


def test_five_wrong_checks_pending_then_429_60202_then_404(
    service: ServiceContext, outbox: Outbox, phone: str
) -> None:
    v = service.verifications.create(to=phone, channel="sms")
    code = outbox.code(phone, v.sid)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        check = service.verification_checks.create(to=phone, code=wrong)
        assert (check.status, check.valid) == ("pending", False)
    # the sixth check is refused even with the right code
    exc = rest_error(lambda: service.verification_checks.create(to=phone, code=code))
    assert (exc.status, exc.code) == (429, 60202), exc

    assert_not_found(lambda: service.verification_checks.create(to=phone, code=code))
    assert_not_found(service.verifications(v.sid).fetch)
    again = service.verifications.create(to=phone, channel="sms")
    assert again.sid != v.sid


def test_dates_parse_as_datetimes(service: ServiceContext, outbox: Outbox, phone: str) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    v = service.verifications.create(to=phone, channel="sms")
    for value in (v.date_created, v.date_updated):
        assert_utc(value)
        assert abs((value - before).total_seconds()) < 60
    # nested values stay strings in the SDK: they must carry the same wire form
    assert API_DATE.fullmatch(v.send_code_attempts[0]["time"])

    check = service.verification_checks.create(to=phone, code=outbox.code(phone, v.sid))
    assert_utc(check.date_created)
    assert_utc(check.date_updated)
    assert check.date_created == v.date_created
    assert check.date_updated >= check.date_created

    created: ServiceInstance = service.fetch()
    assert_utc(created.date_created)
    assert_utc(created.date_updated)


def test_lookup_enabled_reports_the_carrier_type(
    make_service: Callable[..., ServiceContext], service: ServiceContext
) -> None:
    to = mobile_number()
    looked_up = make_service(lookup_enabled=True).verifications.create(to=to, channel="sms")
    carrier = looked_up.lookup["carrier"]
    assert carrier["type"] == "mobile"
    assert set(carrier) >= {"mobile_country_code", "mobile_network_code", "name", "type"}

    plain = service.verifications.create(to=to, channel="sms")
    assert plain.lookup == {}


def test_skip_sms_to_landlines_refuses_a_landline_403_60205(
    make_service: Callable[..., ServiceContext],
) -> None:
    service = make_service(lookup_enabled=True, skip_sms_to_landlines=True)
    exc = rest_error(lambda: service.verifications.create(to=UK_LANDLINE, channel="sms"))
    assert (exc.status, exc.code) == (403, 60205), exc

    # nothing was left pending, and a landline can still take a call
    call = service.verifications.create(to=UK_LANDLINE, channel="call")
    assert attempt_channels(call) == ["CALL"]
    assert call.lookup["carrier"]["type"] == "landline"
    service.verifications(call.sid).update(status="canceled")
    # a mobile still gets its SMS
    sms = service.verifications.create(to=mobile_number(), channel="sms")
    assert (sms.status, sms.lookup["carrier"]["type"]) == ("pending", "mobile")


def test_locale_changes_the_language(service: ServiceContext, outbox: Outbox) -> None:
    default_to, spanish_to = mobile_number(), mobile_number()
    default = service.verifications.create(to=default_to, channel="sms")
    spanish = service.verifications.create(to=spanish_to, channel="sms", locale="es")
    english_text = outbox.wait(default_to, default.sid)[0]
    spanish_text = outbox.wait(spanish_to, spanish.sid)[0]
    assert english_text["locale"].startswith("en")
    assert spanish_text["locale"].startswith("es")
    assert "code" in english_text["text"]
    assert "código" in spanish_text["text"]
    assert str(spanish_text["code"]) in spanish_text["text"]


def test_custom_code_is_sent_and_checks(
    make_service: Callable[..., ServiceContext], outbox: Outbox, phone: str
) -> None:
    service = make_service(custom_code_enabled=True)
    v = service.verifications.create(to=phone, channel="sms", custom_code="8642")
    assert outbox.code(phone, v.sid) == "8642"
    assert service.verification_checks.create(to=phone, code="8642").status == "approved"


# ---- SNA and auto -------------------------------------------------------------------------------


def test_sna_url_then_check_without_code_approves(service: ServiceContext, stack: Stack) -> None:
    v = service.verifications.create(to=SNA_NUMBER, channel="sna")
    assert (v.channel, v.status) == ("sna", "pending")
    assert attempt_channels(v) == ["SNA"]
    url = v.sna["url"]
    assert url.startswith(f"{stack.url}/v2/verify/{v.sid}/")
    assert service.verifications(v.sid).fetch().sna == {"url": url}

    # before the device has been through, a check without code is not approved
    assert service.verification_checks.create(to=SNA_NUMBER).status == "pending"

    resp = device_opens(url, stack, SNA_DEVICE)
    assert resp.status_code == 200, resp.text
    assert resp.history and all(r.status_code == 302 for r in resp.history)
    assert resp.text.startswith("ErrorCode=0&ErrorDescription=Success&Carrier=")

    # single use: the same URL again is refused, whichever device opens it
    again = device_opens(url, stack, SNA_DEVICE)
    assert again.status_code == 409, again.text

    check = service.verification_checks.create(to=SNA_NUMBER)
    assert (check.sid, check.status, check.valid, check.channel) == (
        v.sid,
        "approved",
        True,
        "sna",
    )
    assert check.sna_attempts_error_codes == []
    assert_not_found(service.verifications(v.sid).fetch)
    assert device_opens(url, stack, SNA_DEVICE).status_code >= 400


def test_sna_check_by_verification_sid_approves(service: ServiceContext, stack: Stack) -> None:
    v = service.verifications.create(to=SNA_NUMBER, channel="sna")
    assert device_opens(v.sna["url"], stack, SNA_DEVICE).status_code == 200
    check = service.verification_checks.create(verification_sid=v.sid)
    assert (check.sid, check.status) == (v.sid, "approved")


def test_sna_device_on_another_number_fails_and_the_check_stays_pending(
    service: ServiceContext, stack: Stack
) -> None:
    v = service.verifications.create(to=SNA_NUMBER, channel="sna")
    resp = device_opens(v.sna["url"], stack, OTHER_DEVICE)
    assert resp.status_code != 200, resp.text
    assert "ErrorCode=0" not in resp.text

    # Twilio: a failed SNA attempt is not an approval; the verification stays pending
    check = service.verification_checks.create(to=SNA_NUMBER)
    assert (check.sid, check.status, check.valid) == (v.sid, "pending", False)
    canceled = service.verifications(v.sid).update(status="canceled")
    assert canceled.status == "canceled"


def test_auto_with_a_covered_device_ip_starts_with_sna(
    service: ServiceContext, stack: Stack
) -> None:
    v = service.verifications.create(to=SNA_NUMBER, channel="auto", device_ip=SNA_DEVICE)
    assert v.channel == "sna"
    assert v.sna is not None and v.sna["url"].startswith(stack.url)
    assert attempt_channels(v) == ["SNA"]

    assert device_opens(v.sna["url"], stack, SNA_DEVICE).status_code == 200
    check = service.verification_checks.create(to=SNA_NUMBER)
    assert (check.sid, check.status, check.valid) == (v.sid, "approved", True)


def test_auto_falls_back_to_sms_when_the_device_fails(
    service: ServiceContext, outbox: Outbox, stack: Stack
) -> None:
    v = service.verifications.create(to=SNA_NUMBER, channel="auto", device_ip=SNA_DEVICE)
    assert attempt_channels(v) == ["SNA"]
    resp = device_opens(v.sna["url"], stack, OTHER_DEVICE)
    assert resp.status_code != 200, resp.text

    sms = outbox.wait(SNA_NUMBER, v.sid)[0]
    assert sms["channel"] == "sms"
    fetched = service.verifications(v.sid).fetch()
    assert (fetched.sid, fetched.status, fetched.channel) == (v.sid, "pending", "sms")
    assert attempt_channels(fetched) == ["SNA", "SMS"]
    assert fetched.sna is None

    check = service.verification_checks.create(to=SNA_NUMBER, code=str(sms["code"]))
    assert (check.sid, check.status, check.channel) == (v.sid, "approved", "sms")


@pytest.mark.parametrize(
    "device_ip",
    [pytest.param(None, id="no-device-ip"), pytest.param(UNLISTED_IP, id="unlisted-device-ip")],
)
def test_auto_without_a_covered_device_is_plain_sms(
    service: ServiceContext, outbox: Outbox, device_ip: str | None
) -> None:
    params = {} if device_ip is None else {"device_ip": device_ip}
    v = service.verifications.create(to=SNA_NUMBER, channel="auto", **params)
    assert (v.channel, v.status, v.sna) == ("sms", "pending", None)
    assert attempt_channels(v) == ["SMS"]
    assert outbox.wait(SNA_NUMBER, v.sid)[0]["channel"] == "sms"
    assert service.verifications(v.sid).update(status="canceled").status == "canceled"

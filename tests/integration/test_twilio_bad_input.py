"""Bad requests in the Twilio dialect: always a clean 4xx in Twilio's error shape, no state left.

Each case is a raw form POST (what any Twilio client library sends) with Basic auth against an
existing service. Every answer must be a 4xx, never a 5xx, with a JSON body of exactly
{code, message, more_info, status} (no `type`/`title`, which would turn the SDK's exception into
its RFC 9457 one), `status` equal to the HTTP status, and for 400 the code 60200 with the
offending parameter named in `message`. After each case a valid request still works and shows
that the bad one left nothing behind: no pending verification, no counted check, no service.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.support.processes import Stack, wait_until

ERROR_KEYS = {"code", "message", "more_info", "status"}
UNKNOWN_SERVICE = "VA" + "0" * 32
FORM = "application/x-www-form-urlencoded"
CODE_FOR_STATUS = {400: 60200, 404: 20404, 413: 20413}


@dataclass(frozen=True)
class Ctx:
    """What a case may build its request from: this test's own destinations."""

    to: str  # a fresh E.164 number
    email: str  # a fresh address
    code: str  # the code of the live verification of `to` ("" when the case has none)


@dataclass(frozen=True)
class Case:
    id: str
    status: int
    # the parameter a 400 must name in its message
    param: str | None
    # form fields (a dict, sent urlencoded) or raw bytes sent with `content_type`
    body: Callable[[Ctx], dict[str, str] | bytes]
    # verifications | custom (a service with custom codes on) | check | update | services |
    # list (GET /v2/Services with `body` as the query) | unknown (an unknown service sid)
    target: str = "verifications"
    content_type: str = FORM
    # start a verification of ctx.to before the bad request (checks and updates need one)
    live: bool = False


def in_script(digits: str, zero: int) -> str:
    """ASCII digits rewritten in another script's digits (which regex `\\d` also matches)."""
    return "".join(chr(zero + int(d)) for d in digits)


ARABIC_INDIC_ZERO, FULLWIDTH_ZERO = 0x0660, 0xFF10


def sms(ctx: Ctx, **extra: str) -> dict[str, str]:
    return {"To": ctx.to, "Channel": "sms", **extra}


def email(ctx: Ctx, **extra: str) -> dict[str, str]:
    return {"To": ctx.email, "Channel": "email", **extra}


CASES: list[Case] = [
    # ---- Verifications: To and Channel
    Case("to-missing", 400, "To", lambda c: {"Channel": "sms"}),
    Case("to-empty", 400, "To", lambda c: {"To": "", "Channel": "sms"}),
    Case("channel-missing", 400, "Channel", lambda c: {"To": c.to}),
    Case("channel-unknown", 400, "Channel", lambda c: sms(c, Channel="fax")),
    Case("to-without-plus", 400, "To", lambda c: sms(c, To=c.to[1:])),
    Case("to-with-letters", 400, "To", lambda c: sms(c, To="+44770090ABCD")),
    Case("to-too-short", 400, "To", lambda c: sms(c, To="+4477")),
    Case(
        "to-arabic-indic-digits",
        400,
        "To",
        lambda c: sms(c, To="+44" + in_script(c.to[3:], ARABIC_INDIC_ZERO)),
    ),
    Case(
        "to-fullwidth-digits",
        400,
        "To",
        lambda c: sms(c, To=c.to[:7] + in_script(c.to[7:], FULLWIDTH_ZERO)),
    ),
    Case("to-5000-chars", 400, "To", lambda c: sms(c, To="+" + "4" * 4999)),
    Case("email-channel-with-a-phone", 400, "To", lambda c: email(c, To=c.to)),
    Case("email-with-two-ats", 400, "To", lambda c: email(c, To="a@@example.com")),
    Case("sms-with-an-email", 400, "To", lambda c: sms(c, To=c.email)),
    Case("call-with-an-email", 400, "To", lambda c: sms(c, To=c.email, Channel="call")),
    # ---- Verifications: optional parameters
    Case("custom-code-disabled", 400, "CustomCode", lambda c: sms(c, CustomCode="123456")),
    Case("custom-code-3-chars", 400, "CustomCode", lambda c: sms(c, CustomCode="123"), "custom"),
    Case(
        "custom-code-11-chars",
        400,
        "CustomCode",
        lambda c: sms(c, CustomCode="1" * 11),
        "custom",
    ),
    Case(
        "custom-code-with-dash", 400, "CustomCode", lambda c: sms(c, CustomCode="12-34"), "custom"
    ),
    Case("locale-unsupported", 400, "Locale", lambda c: sms(c, Locale="xx-yy")),
    Case("rate-limits-not-json", 400, "RateLimits", lambda c: sms(c, RateLimits="{ip: 1")),
    Case("rate-limits-json-array", 400, "RateLimits", lambda c: sms(c, RateLimits='["ip"]')),
    Case(
        "channel-configuration-not-json",
        400,
        "ChannelConfiguration",
        lambda c: email(c, ChannelConfiguration="from=me"),
    ),
    Case(
        "channel-configuration-from-not-an-email",
        400,
        "ChannelConfiguration",
        lambda c: email(c, ChannelConfiguration='{"from": "not an email"}'),
    ),
    Case(
        "channel-configuration-from-not-a-string",
        400,
        "ChannelConfiguration",
        lambda c: email(c, ChannelConfiguration='{"from": 5}'),
    ),
    Case(
        "device-ip-not-an-ip",
        400,
        "DeviceIp",
        lambda c: sms(c, Channel="auto", DeviceIp="100.64.0.256"),
    ),
    Case("amount-without-psd2", 400, "Amount", lambda c: sms(c, Amount="€39.99")),
    Case("payee-without-psd2", 400, "Payee", lambda c: sms(c, Payee="Acme")),
    Case(
        "custom-friendly-name-31-chars",
        400,
        "CustomFriendlyName",
        lambda c: sms(c, CustomFriendlyName="N" * 31),
    ),
    # ---- the body itself
    Case("body-over-64kb", 413, None, lambda c: sms(c, Padding="x" * 70_000)),
    Case(
        "body-invalid-utf8",
        400,
        "body",
        lambda c: f"To=%2B{c.to[1:]}&Channel=sms&CustomFriendlyName=".encode() + b"\xff\xfe",
    ),
    Case(
        "body-unknown-charset",
        400,
        "body",
        lambda c: f"To=%2B{c.to[1:]}&Channel=sms".encode(),
        content_type=FORM + "; charset=no-such-charset",
    ),
    Case(
        "multipart-without-boundary",
        400,
        "body",
        lambda c: f"To=%2B{c.to[1:]}&Channel=sms".encode(),
        content_type="multipart/form-data",
    ),
    Case("unknown-service", 404, None, lambda c: sms(c), "unknown"),
    # ---- VerificationCheck (a verification of the number is pending)
    Case("check-without-to-or-sid", 400, "To", lambda c: {"Code": c.code}, "check", live=True),
    Case(
        "check-code-with-dash",
        400,
        "Code",
        lambda c: {"To": c.to, "Code": c.code[:3] + "-" + c.code[3:]},
        "check",
        live=True,
    ),
    Case(
        "check-code-3-chars", 400, "Code", lambda c: {"To": c.to, "Code": "123"}, "check", live=True
    ),
    Case(
        "check-code-11-chars",
        400,
        "Code",
        lambda c: {"To": c.to, "Code": "1" * 11},
        "check",
        live=True,
    ),
    Case(
        "check-verification-sid-malformed",
        400,
        "VerificationSid",
        lambda c: {"VerificationSid": "VE123", "Code": c.code},
        "check",
        live=True,
    ),
    # ---- Verification update
    Case("update-status-missing", 400, "Status", lambda c: {}, "update", live=True),
    Case(
        "update-status-expired", 400, "Status", lambda c: {"Status": "expired"}, "update", live=True
    ),
    # ---- Services
    Case(
        "service-friendly-name-missing",
        400,
        "FriendlyName",
        lambda c: {"CodeLength": "6"},
        "services",
    ),
    Case(
        "service-friendly-name-33-chars",
        400,
        "FriendlyName",
        lambda c: {"FriendlyName": "F" * 33},
        "services",
    ),
    *[
        Case(
            f"service-code-length-{name}",
            400,
            "CodeLength",
            lambda c, v=value: {"FriendlyName": "Shop", "CodeLength": v},
            "services",
        )
        for name, value in [
            ("3", "3"),
            ("11", "11"),
            ("six", "six"),
            ("arabic-indic-6", in_script("6", ARABIC_INDIC_ZERO)),
        ]
    ],
    Case(
        "service-lookup-enabled-maybe",
        400,
        "LookupEnabled",
        lambda c: {"FriendlyName": "Shop", "LookupEnabled": "maybe"},
        "services",
    ),
    Case("list-page-size-0", 400, "PageSize", lambda c: {"PageSize": "0"}, "list"),
]


# ---- fixtures -----------------------------------------------------------------------------------


class Api:
    """Raw HTTP as a Twilio client sends it: Basic auth and form bodies."""

    def __init__(self, stack: Stack) -> None:
        data = stack.cli("accounts", "create", "--name", "bad-input")
        assert isinstance(data, dict)
        self.base = stack.url
        self.http = requests.Session()
        self.account_sid, self.auth_token = str(data["account_sid"]), str(data["auth_token"])
        self.http.auth = (self.account_sid, self.auth_token)
        self.http.verify = str(stack.cert)
        self.service = self.create_service()
        self.custom_service = self.create_service(CustomCodeEnabled="true")

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.http.request(method, self.base + path, timeout=10, **kw)

    def create_service(self, **params: str) -> str:
        resp = self.request("POST", "/v2/Services", data={"FriendlyName": "Shop", **params})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["sid"])

    def service_count(self) -> int:
        resp = self.request("GET", "/v2/Services", params={"PageSize": "1000"})
        assert resp.status_code == 200, resp.text
        return len(resp.json()["services"])

    def start(self, to: str, channel: str = "sms") -> dict[str, Any]:
        resp = self.request(
            "POST",
            f"/v2/Services/{self.service}/Verifications",
            data={"To": to, "Channel": channel},
        )
        assert resp.status_code == 201, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def check(self, to: str, code: str) -> requests.Response:
        return self.request(
            "POST", f"/v2/Services/{self.service}/VerificationCheck", data={"To": to, "Code": code}
        )

    def messages(self, to: str, sid: str) -> list[dict[str, Any]]:
        resp = self.request("GET", "/sandbox/v1/messages", params={"to": to})
        resp.raise_for_status()
        return [m for m in resp.json() if m["request_id"] == sid]

    def code(self, to: str, sid: str) -> str:
        found = wait_until(lambda: self.messages(to, sid), timeout=15, what=f"the code of {sid}")
        return str(found[0]["code"])


@pytest.fixture(scope="module")
def api(stack: Stack) -> Api:
    return Api(stack)


def path_for(case: Case, api: Api, live_sid: str) -> str:
    return {
        "verifications": f"/v2/Services/{api.service}/Verifications",
        "custom": f"/v2/Services/{api.custom_service}/Verifications",
        "check": f"/v2/Services/{api.service}/VerificationCheck",
        "update": f"/v2/Services/{api.service}/Verifications/{live_sid}",
        "services": "/v2/Services",
        "list": "/v2/Services",
        "unknown": f"/v2/Services/{UNKNOWN_SERVICE}/Verifications",
    }[case.target]


def assert_twilio_error(resp: requests.Response, case: Case) -> dict[str, Any]:
    assert resp.status_code == case.status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    body: dict[str, Any] = resp.json()
    assert set(body) == ERROR_KEYS, body
    assert body["status"] == resp.status_code
    assert body["code"] == CODE_FOR_STATUS[case.status], body
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{body['code']}"
    assert isinstance(body["message"], str) and body["message"]
    if case.param is not None:
        assert re.search(rf"\b{re.escape(case.param)}\b", body["message"]), body
    return body


# ---- the table ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_request_is_a_clean_4xx_and_leaves_no_state(api: Api, number: str, case: Case) -> None:
    to = "+" + number
    live_sid, code = "", ""
    if case.live:
        live_sid = str(api.start(to)["sid"])
        code = api.code(to, live_sid)
    ctx = Ctx(to=to, email=f"user{random.randrange(10**9)}@example.com", code=code)
    services_before = api.service_count()

    body = case.body(ctx)
    path = path_for(case, api, live_sid)
    if case.target == "list":
        assert isinstance(body, dict)
        resp = api.request("GET", path, params=body)
    elif isinstance(body, bytes):
        resp = api.request("POST", path, data=body, headers={"Content-Type": case.content_type})
    else:
        resp = api.request("POST", path, data=body)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert_twilio_error(resp, case)

    # nothing was created or counted by the refused request
    assert api.service_count() == services_before
    if case.live:
        # the refused request was no check: four wrong codes and the right one make five checks
        fetched = api.request("GET", f"/v2/Services/{api.service}/Verifications/{live_sid}")
        assert fetched.status_code == 200 and fetched.json()["status"] == "pending"
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(4):
            assert api.check(to, wrong).json()["status"] == "pending"
        approved = api.check(to, code)
        assert approved.status_code in (200, 201), approved.text
        assert approved.json()["status"] == "approved"
    else:
        # no verification was left pending for the number: a valid start is new, not a resend
        started = api.start(to)
        assert [a["channel"] for a in started["send_code_attempts"]] == ["SMS"]
        sent = wait_until(lambda: api.messages(to, started["sid"]), timeout=15, what="the SMS")
        assert len(sent) == 1
        assert api.check(to, str(sent[0]["code"])).json()["status"] == "approved"


def test_error_bodies_never_carry_rfc9457_fields(api: Api) -> None:
    """`type` + `title` would make the SDK raise TwilioServiceException instead."""
    resp = api.request("POST", f"/v2/Services/{api.service}/Verifications", data={})
    assert resp.status_code == 400
    assert not {"type", "title", "detail", "instance"} & set(resp.json())


def test_unauthenticated_is_401_20003(api: Api, stack: Stack) -> None:
    for auth in [None, (api.account_sid, "wrong"), ("AC" + "1" * 32, api.auth_token)]:
        resp = requests.post(
            f"{stack.url}/v2/Services/{api.service}/Verifications",
            data={"To": "+447700900555", "Channel": "sms"},
            auth=auth,
            verify=str(stack.cert),
            timeout=10,
        )
        assert resp.status_code == 401, resp.text
        assert resp.json() == {
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        }


@pytest.mark.parametrize(
    "path",
    [
        "/RateLimits",
        "/Webhooks",
        "/Entities",
        "/Entities/user-0001/Factors",
    ],
)
def test_every_form_endpoint_answers_an_undecodable_body_with_400(api: Api, path: str) -> None:
    # the same charset / multipart failures as the Verifications cases above, on the other
    # form resources: each parses its body through one reader, so none may answer 500
    for content_type in (FORM + "; charset=no-such-charset", "multipart/form-data"):
        resp = api.request(
            "POST",
            f"/v2/Services/{api.service}{path}",
            data=b"UniqueName=x&FriendlyName=y",
            headers={"Content-Type": content_type},
        )
        assert resp.status_code == 400, (path, content_type, resp.status_code, resp.text)
        body = resp.json()
        assert set(body) == ERROR_KEYS and body["code"] == CODE_FOR_STATUS[400], body

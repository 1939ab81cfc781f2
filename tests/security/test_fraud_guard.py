"""The fraud guard on the guard stack (limits in tests/security/helpers.py): per-destination and
per-IP send windows, the adaptive per-country budget against SMS pumping, the per-request bypass
and geo permissions, in both dialects."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import phonenumbers
import requests
from redis.asyncio import Redis

from orchestrator.domain import errors
from orchestrator.domain.models import Channel, Step, Verification
from orchestrator.security import fraud
from orchestrator.settings import Settings
from tests.security.helpers import (
    IP_LIMIT,
    NUMBER_LIMIT,
    PREFIX_FLOOR,
    PREFIX_MULTIPLIER,
    PROXY_IP,
    Twilio,
    Vonage,
    french_number,
    fresh_ip,
    sms_body,
    uk_number,
    us_number,
)
from tests.support.client import TestApp
from tests.support.processes import CLI, Stack

PROBLEM = "application/problem+json"


def problem(resp: requests.Response, status: int, title: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith(PROBLEM), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["title"] == title, body
    for key in ("type", "detail", "instance"):
        assert isinstance(body.get(key), str) and body[key], body
    return body


def twilio_error(resp: requests.Response, status: int, code: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert body["code"] == code and body["status"] == status, body
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}", body
    return body


def started(resp: requests.Response) -> str:
    assert resp.status_code == 202, resp.text
    return str(resp.json()["request_id"])


def complete(api: Vonage, to: str) -> None:
    rid = started(api.start(sms_body(to)))
    code = api.wait_message(to, rid, "sms")["code"]
    checked = api.check(rid, code)
    assert checked.status_code == 200, checked.text


# ---- per-destination and per-IP windows --------------------------------------------------------


def test_per_number_limit_vonage(
    guard_stack: Stack, make_guard_app: Callable[..., TestApp]
) -> None:
    app = make_guard_app()
    api = Vonage(guard_stack, app, rotate=True)
    number = uk_number()
    for _ in range(NUMBER_LIMIT):
        rid = started(api.start(sms_body(number)))
        assert api.cancel(rid).status_code == 204
    refused = problem(api.start(sms_body(number)), 429, "Rate Limit Hit")
    assert refused["type"].endswith("#rate-limit")
    # the number is the only thing limited: another number, or the same number for another
    # application, still goes through
    started(api.start(sms_body(uk_number())))
    other = Vonage(guard_stack, make_guard_app(), rotate=True)
    started(other.start(sms_body(number)))
    # the same number as the second step of a workflow counts too
    body = {"brand": "ACME", "workflow": [
        {"channel": "email", "to": "user@example.com"}, {"channel": "sms", "to": number}]}  # fmt: skip
    problem(api.start(body), 429, "Rate Limit Hit")


def test_a_start_refused_as_busy_is_counted_nowhere(
    guard_stack: Stack, make_guard_app: Callable[..., TestApp]
) -> None:
    # the guard, the commit and the counting are one Lua call: a 409 for a destination that
    # already has a pending verification must not use up the number's window
    api = Vonage(guard_stack, make_guard_app(), rotate=True)
    number = uk_number()
    pending = started(api.start(sms_body(number)))
    for _ in range(NUMBER_LIMIT + 2):
        busy = api.start(sms_body(number))
        assert busy.status_code == 409, busy.text
    assert api.cancel(pending).status_code == 204
    for _ in range(NUMBER_LIMIT - 1):
        assert api.cancel(started(api.start(sms_body(number)))).status_code == 204
    problem(api.start(sms_body(number)), 429, "Rate Limit Hit")


def test_per_number_limit_twilio_counts_new_verifications_not_resends(guard_stack: Stack) -> None:
    tw = Twilio(guard_stack, rotate=True)
    number = "+" + uk_number()
    for _ in range(NUMBER_LIMIT):
        created = tw.start(number)
        assert created.status_code == 201, created.text
        assert tw.cancel(created.json()["sid"]).status_code == 200
    refused = tw.start(number)
    twilio_error(refused, 429, 20429)
    assert 1 <= int(refused.headers["Retry-After"]) <= 600

    # a pending verification's resends are bounded by Twilio's own 5 sends, not by this window
    # (a US number: the UK budget of this service is at its floor by now)
    other = "+" + us_number()
    first = tw.start(other)
    assert first.status_code == 201, first.text
    for _ in range(NUMBER_LIMIT):
        again = tw.start(other)
        assert again.status_code == 201, again.text
        assert again.json()["sid"] == first.json()["sid"]


def test_per_ip_limit_spans_applications_and_dialects(
    guard_stack: Stack, make_guard_app: Callable[..., TestApp]
) -> None:
    api = Vonage(guard_stack, make_guard_app())
    # a mix of countries, so that no country's budget (floor 3) is what stops them
    destinations = [uk_number(), us_number(), french_number(), uk_number()]
    assert len(destinations) == IP_LIMIT
    for to in destinations:
        started(api.start(sms_body(to)))
    problem(api.start(sms_body(us_number())), 429, "Rate Limit Hit")
    # another application called from the same address, or the Twilio dialect: same window
    problem(Vonage(guard_stack, make_guard_app(), ip=api.ip).start(sms_body(uk_number())), 429,
            "Rate Limit Hit")  # fmt: skip
    tw = Twilio(guard_stack, ip=api.ip)
    twilio_error(tw.start("+" + uk_number()), 429, 20429)
    # another address is not limited
    assert Vonage(guard_stack, api.app).start(sms_body(uk_number())).status_code == 202


def test_per_ip_limit_behind_a_trusted_proxy_keys_on_the_forwarded_client(
    guard_stack: Stack, make_guard_app: Callable[..., TestApp]
) -> None:
    # the country budgets (floor 3) stay out of the way: this is about the per-IP window
    app = make_guard_app("--allow-fraud-bypass")
    proxy = Vonage(guard_stack, app, ip=PROXY_IP)
    client_a, client_b = fresh_ip(), fresh_ip()

    def via_proxy(forwarded_for: str) -> requests.Response:
        body = sms_body(uk_number(), fraud_check=False)
        return proxy.request(
            "POST", "/v2/verify", json=body, headers={"X-Forwarded-For": forwarded_for}
        )

    for _ in range(IP_LIMIT):
        started(via_proxy(client_a))
    problem(via_proxy(client_a), 429, "Rate Limit Hit")
    # another client behind the same proxy has its own window; what the client itself put in
    # front of the header (the left side) is not believed, the hop our proxy saw is
    started(via_proxy(f"{client_a}, {client_b}"))
    problem(via_proxy(f"{client_b}, {client_a}"), 429, "Rate Limit Hit")
    # a caller that is not a trusted proxy cannot pick its address with the header
    direct = Vonage(guard_stack, app)
    for _ in range(IP_LIMIT):
        resp = direct.request(
            "POST",
            "/v2/verify",
            json=sms_body(us_number(), fraud_check=False),
            headers={"X-Forwarded-For": fresh_ip()},
        )
        started(resp)
    problem(
        direct.request(
            "POST",
            "/v2/verify",
            json=sms_body(us_number(), fraud_check=False),
            headers={"X-Forwarded-For": fresh_ip()},
        ),
        429,
        "Rate Limit Hit",
    )


# ---- the adaptive per-country budget -------------------------------------------------------------


def test_pumping_burst_to_an_unseen_prefix_stops_at_the_floor_while_converting_traffic_flows(
    guard_stack: Stack, make_guard_app: Callable[..., TestApp]
) -> None:
    app = make_guard_app()
    api = Vonage(guard_stack, app, rotate=True)
    # established traffic: UK verifications that users complete
    for _ in range(PREFIX_FLOOR):
        complete(api, uk_number())
    # the burst: a country this application never converted in
    for _ in range(PREFIX_FLOOR):
        started(api.start(sms_body(french_number())))
    blocked = problem(api.start(sms_body(french_number())), 403, "Forbidden")
    assert blocked["type"].endswith("#forbidden")
    assert "fraud" in blocked["detail"].lower()
    problem(api.start(sms_body(french_number())), 403, "Forbidden")
    # a workflow whose fallback goes to the blocked country is blocked as a whole
    body = {"brand": "ACME", "workflow": [
        {"channel": "sms", "to": uk_number()}, {"channel": "voice", "to": french_number()}]}  # fmt: skip
    problem(api.start(body), 403, "Forbidden")

    # the UK keeps flowing past the floor: its budget is multiplier x its completions
    budget = PREFIX_MULTIPLIER * PREFIX_FLOOR
    for _ in range(budget - PREFIX_FLOOR):
        started(api.start(sms_body(uk_number())))
    # ... up to that budget, no further
    problem(api.start(sms_body(uk_number())), 403, "Forbidden")
    # email has no country: never budgeted
    started(api.start({"brand": "ACME", "workflow": [{"channel": "email", "to": "a@example.com"}]}))
    # budgets are per application: another one starts fresh
    started(Vonage(guard_stack, make_guard_app(), rotate=True).start(sms_body(french_number())))


def test_fraud_check_false_bypasses_the_budget_only_when_the_application_allows_it(
    guard_stack: Stack, make_guard_app: Callable[..., TestApp]
) -> None:
    strict = Vonage(guard_stack, make_guard_app(), rotate=True)
    trusted = Vonage(guard_stack, make_guard_app("--allow-fraud-bypass"), rotate=True)
    for api in (strict, trusted):
        for _ in range(PREFIX_FLOOR):
            started(api.start(sms_body(french_number())))
        problem(api.start(sms_body(french_number())), 403, "Forbidden")
        problem(api.start(sms_body(french_number(), fraud_check=True)), 403, "Forbidden")
    problem(strict.start(sms_body(french_number(), fraud_check=False)), 403, "Forbidden")
    started(trusted.start(sms_body(french_number(), fraud_check=False)))
    started(trusted.start(sms_body(french_number(), fraud_check=False)))
    # the bypass skips the budget, never the per-number window
    number = french_number()
    for _ in range(NUMBER_LIMIT):
        rid = started(trusted.start(sms_body(number, fraud_check=False)))
        assert trusted.cancel(rid).status_code == 204
    problem(trusted.start(sms_body(number, fraud_check=False)), 429, "Rate Limit Hit")
    # and it can be taken back
    guard_stack.cli("apps", "update", trusted.app.application_id, "--no-allow-fraud-bypass")
    problem(trusted.start(sms_body(french_number(), fraud_check=False)), 403, "Forbidden")


def test_twilio_fraud_guard_60410_and_risk_check(guard_stack: Stack) -> None:
    tw = Twilio(guard_stack, rotate=True)
    for _ in range(PREFIX_FLOOR):
        assert tw.start("+" + french_number()).status_code == 201
    twilio_error(tw.start("+" + french_number()), 403, 60410)
    twilio_error(tw.start("+" + french_number(), RiskCheck="disable"), 403, 60410)
    twilio_error(tw.start("+" + french_number(), RiskCheck="sometimes"), 400, 60200)

    shown = guard_stack.cli("services", "update", tw.service, "--allow-fraud-bypass")
    assert shown == {"service_sid": tw.service, "geo_allow": None, "fraud_bypass_allowed": True}
    assert tw.start("+" + french_number(), RiskCheck="disable").status_code == 201
    twilio_error(tw.start("+" + french_number(), RiskCheck="enable"), 403, 60410)
    twilio_error(tw.start("+" + french_number()), 403, 60410)


# ---- geo permissions -----------------------------------------------------------------------------


def test_geo_allow_list_vonage(guard_stack: Stack, make_guard_app: Callable[..., TestApp]) -> None:
    app = make_guard_app("--geo-allow", "44, +1")
    api = Vonage(guard_stack, app, rotate=True)
    started(api.start(sms_body(uk_number())))
    started(api.start(sms_body(us_number())))
    blocked = problem(api.start(sms_body(french_number())), 403, "Forbidden")
    assert "country" in blocked["detail"]
    body = {"brand": "ACME", "workflow": [
        {"channel": "sms", "to": uk_number()}, {"channel": "voice", "to": french_number()}]}  # fmt: skip
    problem(api.start(body), 403, "Forbidden")
    # the bypass is about the budget, never about geo permissions
    guard_stack.cli("apps", "update", app.application_id, "--allow-fraud-bypass")
    problem(api.start(sms_body(french_number(), fraud_check=False)), 403, "Forbidden")
    started(api.start({"brand": "ACME", "workflow": [{"channel": "email", "to": "b@example.com"}]}))

    shown = guard_stack.cli("apps", "update", app.application_id, "--geo-allow", "all")
    assert isinstance(shown, dict)
    assert shown["geo_allow"] is None and shown["fraud_bypass_allowed"] is True
    assert shown["application_id"] == app.application_id
    started(api.start(sms_body(french_number())))


def test_geo_allow_list_twilio_service(guard_stack: Stack) -> None:
    tw = Twilio(guard_stack, rotate=True)
    shown = guard_stack.cli("services", "update", tw.service, "--geo-allow", "44")
    assert shown == {"service_sid": tw.service, "geo_allow": ["44"], "fraud_bypass_allowed": False}
    assert tw.start("+" + uk_number()).status_code == 201
    twilio_error(tw.start("+" + french_number()), 403, 60605)
    twilio_error(tw.start("+" + us_number(), "call"), 403, 60605)
    assert tw.start("someone@example.com", "email").status_code == 201


def test_cli_refuses_bad_fraud_settings(guard_stack: Stack) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], env=guard_stack.env, capture_output=True, text=True, timeout=60
        )

    tw = Twilio(guard_stack)
    bad = run("services", "update", tw.service, "--geo-allow", "44,uk")
    assert bad.returncode == 2 and "calling code" in bad.stderr, bad
    missing = run("services", "update", "VA" + "0" * 32, "--geo-allow", "44")
    assert missing.returncode == 1 and "no service" in missing.stderr, missing
    assert run("apps", "update", "no-such-app", "--allow-fraud-bypass").returncode == 1


# ---- the budget's buckets, with an explicit clock ----------------------------------------------


def test_budget_learns_from_the_busiest_recent_bucket_and_forgets_old_ones(
    guard_stack: Stack,
) -> None:
    """floor 2, multiplier 2, 60 s buckets, a window of 3 buckets, on the guard stack's Redis."""
    settings = Settings(
        redis_url=guard_stack.redis.url,
        fraud_number_limit=0,
        fraud_ip_limit=0,
        fraud_prefix_floor=2,
        fraud_prefix_multiplier=2,
        fraud_prefix_bucket_seconds=60,
        fraud_prefix_window_buckets=3,
    )
    tenant = "budget-" + uuid.uuid4().hex
    bucket = 60_000
    t0 = (int(time.time() * 1000) // bucket) * bucket  # the start of a bucket
    uk = Verification(
        request_id=str(uuid.uuid4()), tenant=tenant, brand="ACME", locale="en-gb",
        channel_timeout=300, code_length=4, created_at=datetime.now(UTC),
        steps=[Step(channel=Channel.SMS, to=uk_number())],
    )  # fmt: skip

    async def starts(at_ms: int, limit: int = 50) -> int:
        """How many UK starts the budget lets through at `at_ms` (stops at the first refusal)."""
        for n in range(limit):
            try:
                await fraud.run_guard(redis, fraud.start_guard(
                    settings, dialect="vonage", tenant=tenant, destinations=[],
                    codes=["44"], client_ip=None, bypass_requested=False, now_ms=at_ms,
                ))  # fmt: skip
            except errors.Blocked as exc:
                assert (exc.reason, exc.calling_code) == ("fraud", "44")
                return n
        return limit

    async def scenario() -> None:
        # nothing learned: the floor
        assert await starts(t0) == 2
        # 5 completions in this bucket: its peak is 5, so 2 x 5 = 10 starts per bucket...
        for _ in range(5):
            await fraud.record_completion(redis, settings, uk, now_ms=t0 + 1000)
        assert await starts(t0 + 2000) == 10 - 2
        # ... in the next buckets too, while that bucket is within the window of 3
        assert await starts(t0 + bucket) == 10
        assert await starts(t0 + 2 * bucket + 59_000) == 10
        # a quieter later bucket does not lower the peak
        await fraud.record_completion(redis, settings, uk, now_ms=t0 + 2 * bucket)
        assert await starts(t0 + 2 * bucket + 59_500) == 0
        # once the busy bucket leaves the window, the quieter one rules: max(2, 2 x 1) = 2
        assert await starts(t0 + 3 * bucket) == 2
        # and then nothing is left: back to the floor
        assert await starts(t0 + 5 * bucket) == 2
        # other calling codes of the same tenant never shared any of this
        await fraud.run_guard(redis, fraud.start_guard(
            settings, dialect="vonage", tenant=tenant, destinations=[], codes=["33"],
            client_ip=None, bypass_requested=False, now_ms=t0 + 5 * bucket,
        ))  # fmt: skip

    redis = Redis.from_url(guard_stack.redis.url)

    async def run() -> None:
        try:
            await scenario()
        finally:
            await redis.aclose()

    asyncio.run(run())


def test_calling_codes() -> None:
    assert fraud.calling_code("447700900123") == "44"
    assert fraud.calling_code("12015550123") == "1"
    assert fraud.calling_code("33612345678") == "33"
    assert fraud.calling_code("9900012345678") == "990"  # the sandbox's virtual operator
    # the prefix lookup agrees with a full parse for every calling code phonenumbers knows
    rng = random.Random(7)
    for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        for _ in range(5):
            digits = str(cc) + "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 12)))
            if digits.startswith("990"):
                continue
            assert fraud.calling_code(digits) == str(phonenumbers.parse("+" + digits).country_code)
    assert fraud.parse_geo(" 44, +1,44 ") == ("1", "44")
    assert fraud.parse_geo("all") == ()

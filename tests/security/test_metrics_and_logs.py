"""Prometheus metrics (the web process on GET /metrics, the worker on its own port) and the
structured JSON logs, which must never carry a code, a secret, a token or an Authorization
header."""

from __future__ import annotations

import json
import re
import secrets
import string
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.security.helpers import (
    AUTH_FAIL_LIMIT,
    IP_LIMIT,
    METRICS_TOKEN,
    NUMBER_LIMIT,
    PREFIX_FLOOR,
    Twilio,
    Vonage,
    basic,
    french_number,
    metric_value,
    sms_body,
    uk_number,
    us_number,
)
from tests.support.client import TestApp
from tests.support.processes import Stack, wait_until
from tests.support.receiver import WebhookReceiver

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def web_metrics(stack: Stack) -> str:
    resp = requests.get(
        stack.url + "/metrics",
        verify=str(stack.cert),
        timeout=10,
        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers
    return resp.text


def worker_metrics(stack: Stack) -> str:
    port = stack.env["VERIFY_WORKER_METRICS_PORT"]
    resp = requests.get(
        f"http://127.0.0.1:{port}/metrics",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},  # the same token as /metrics
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return resp.text


def started(resp: requests.Response) -> str:
    assert resp.status_code == 202, resp.text
    return str(resp.json()["request_id"])


# ---- metrics -------------------------------------------------------------------------------------


def test_web_metrics_need_the_scrape_token_when_one_is_set(guard_stack: Stack) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
        resp = requests.get(
            guard_stack.url + "/metrics", verify=str(guard_stack.cert), timeout=10, headers=headers
        )
        assert resp.status_code == 401, (headers, resp.status_code)
        assert "verify_" not in resp.text
    assert "verify_http_requests_total" in web_metrics(guard_stack)


def test_web_metrics_count_requests_latency_and_conversion(
    guard_stack: Stack, make_guard_app: Callable[..., TestApp]
) -> None:
    before = web_metrics(guard_stack)
    api = Vonage(guard_stack, make_guard_app(), rotate=True)
    number = uk_number()
    rid = started(api.start(sms_body(number)))
    checked = api.check(rid, api.wait_message(number, rid, "sms")["code"])
    assert checked.status_code == 200
    started(api.start(sms_body(uk_number())))  # started, never completed
    tw = Twilio(guard_stack, rotate=True)
    to = "+" + us_number()
    sid = tw.start(to).json()["sid"]
    assert tw.check(sid, tw.code_for(to, sid)).json()["status"] == "approved"
    requests.get(guard_stack.url + "/no/such/path", verify=str(guard_stack.cert), timeout=10)
    after = web_metrics(guard_stack)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    requests_total = "verify_http_requests_total"
    assert delta(requests_total, route="/v2/verify", method="POST", status="202") == 2
    assert delta(requests_total, route="/v2/verify/{request_id}", method="POST", status="200") == 1
    assert delta(requests_total, route="/v2/Services/{service_sid}/Verifications",
                 method="POST", status="201") == 1  # fmt: skip
    assert delta(requests_total, route="unmatched", method="GET", status="404") == 1
    # latency: one observation per request, in the histogram of its route
    assert delta("verify_http_request_duration_seconds_count", route="/v2/verify") == 2
    assert delta("verify_http_request_duration_seconds_bucket", route="/v2/verify", le="+Inf") == 2
    # conversion per channel: started vs completed
    assert delta("verify_verifications_started_total", dialect="vonage", channel="sms") == 2
    assert delta("verify_verifications_completed_total", dialect="vonage", channel="sms") == 1
    assert delta("verify_verifications_started_total", dialect="twilio", channel="sms") == 1
    assert delta("verify_verifications_completed_total", dialect="twilio", channel="sms") == 1
    # labels are route templates: no request id, sid or destination ever becomes a label
    for line in after.splitlines():
        if line.startswith("verify_http_"):
            assert not UUID.search(line) and sid not in line, line
            assert number not in line and to[1:] not in line, line


def test_fraud_blocks_and_auth_throttles_are_counted_by_reason(
    guard_stack: Stack, make_guard_app: Callable[..., TestApp]
) -> None:
    before = web_metrics(guard_stack)
    # number
    api = Vonage(guard_stack, make_guard_app(), rotate=True)
    number = uk_number()
    for _ in range(NUMBER_LIMIT):
        assert api.cancel(started(api.start(sms_body(number)))).status_code == 204
    assert api.start(sms_body(number)).status_code == 429
    # prefix
    for _ in range(PREFIX_FLOOR):
        started(api.start(sms_body(french_number())))
    assert api.start(sms_body(french_number())).status_code == 403
    # geo
    geo = Vonage(guard_stack, make_guard_app("--geo-allow", "44"), rotate=True)
    assert geo.start(sms_body(us_number())).status_code == 403
    # ip
    fixed = Vonage(guard_stack, make_guard_app())
    for to in [uk_number(), us_number(), uk_number(), us_number()][:IP_LIMIT]:
        started(fixed.start(sms_body(to)))
    assert fixed.start(sms_body(uk_number())).status_code == 429
    # Twilio, prefix: counted under its own dialect
    tw = Twilio(guard_stack, rotate=True)
    for _ in range(PREFIX_FLOOR):
        assert tw.start("+" + french_number()).status_code == 201
    assert tw.start("+" + french_number()).status_code == 403
    # a Basic-auth lockout
    app = make_guard_app()
    basic_api = Vonage(guard_stack, app)
    for _ in range(AUTH_FAIL_LIMIT):
        basic_api.start_with(sms_body(uk_number()), basic(app.api_key, "wrong"))
    assert (
        basic_api.start_with(sms_body(uk_number()), basic(app.api_key, app.api_secret)).status_code
        == 429
    )
    after = web_metrics(guard_stack)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    blocks = "verify_fraud_blocks_total"
    assert delta(blocks, dialect="vonage", reason="number") == 1
    assert delta(blocks, dialect="vonage", reason="prefix") == 1
    assert delta(blocks, dialect="vonage", reason="geo") == 1
    assert delta(blocks, dialect="vonage", reason="ip") == 1
    assert delta(blocks, dialect="twilio", reason="prefix") == 1
    assert delta("verify_auth_throttled_total", scope="user") == 1


def test_worker_metrics_count_sends_and_webhook_attempts(
    guard_stack: Stack, make_guard_app: Callable[..., TestApp], receiver: WebhookReceiver
) -> None:
    before = worker_metrics(guard_stack)
    api = Vonage(guard_stack, make_guard_app(), rotate=True)
    number = uk_number()
    rid = started(api.start(sms_body(number)))
    assert api.check(rid, api.wait_message(number, rid, "sms")["code"]).status_code == 200
    receiver.wait_summary(rid)
    # an application whose status URL never answers: its webhook is retried, then exhausted
    dead = Vonage(guard_stack, make_guard_app(), rotate=True)
    dead_app = dead.app.application_id
    guard_stack.cli("apps", "update", dead_app, "--status-url", "http://127.0.0.1:9/hook")
    number = uk_number()
    rid = started(dead.start(sms_body(number)))
    assert dead.check(rid, dead.wait_message(number, rid, "sms")["code"]).status_code == 200

    def delta(text: str, name: str, **labels: str) -> float:
        return metric_value(text, name, **labels) - metric_value(before, name, **labels)

    def settled() -> str | None:
        text = worker_metrics(guard_stack)
        done = (
            delta(text, "verify_sends_total", channel="sms", provider="sandbox", outcome="sent")
            >= 2
            and delta(text, "verify_webhook_attempts_total", outcome="delivered") >= 1
            and delta(text, "verify_webhook_attempts_total", outcome="retry") >= 1
            and delta(text, "verify_webhook_exhausted_total") >= 1
        )
        return text if done else None

    wait_until(settled, timeout=20, interval=0.2, what="worker metrics to count the run")


# ---- logs ----------------------------------------------------------------------------------------


def _code_flows(stack: Stack, make_app: Callable[..., TestApp]) -> tuple[list[str], list[str]]:
    """Runs flows that handle codes and credentials; returns (codes, secrets) they used."""
    codes: list[str] = []
    creds: list[str] = []
    app = make_app()
    creds += [app.api_secret, app.signature_secret, app.webhook_secret]
    creds += [line for line in app.private_key.splitlines() if "PRIVATE KEY" not in line]
    api = Vonage(stack, app, rotate=True)

    # JWT start with 10-digit generated codes, a wrong guess, then the right code
    number = uk_number()
    token = app.token()
    creds.append(token)
    body = {"brand": "ACME", "code_length": 10, "workflow": [{"channel": "sms", "to": number}]}
    rid = started(api.request("POST", "/v2/verify", json=body,
                              headers={"Authorization": f"Bearer {token}"}))  # fmt: skip
    code = api.wait_message(number, rid, "sms")["code"]
    wrong = "".join(secrets.choice(string.digits) for _ in range(10))
    codes += [code, wrong]
    assert api.check(rid, wrong).status_code == 400
    assert api.check(rid, code).status_code == 200

    # a custom alphanumeric code, started with Basic auth, and a replayed token
    custom = "".join(secrets.choice(string.ascii_letters) for _ in range(10))
    codes.append(custom)
    right_basic = basic(app.api_key, app.api_secret)
    creds.append(right_basic.split(" ", 1)[1])
    number = uk_number()
    custom_body = sms_body(number, code=custom)
    rid = started(api.start_with(custom_body, right_basic))
    assert api.wait_message(number, rid, "sms")["code"] == custom
    assert api.check(rid, custom).status_code == 200
    assert api.start_with(sms_body(uk_number()), f"Bearer {token}").status_code == 401

    # refused Basic secrets are secrets too
    guess = "guess-" + secrets.token_urlsafe(12)
    creds += [guess, basic(app.api_key, guess).split(" ", 1)[1]]
    assert api.start_with(sms_body(uk_number()), basic(app.api_key, guess)).status_code == 401

    # Twilio: 10-digit codes, a wrong check, an approval; the auth token
    tw = Twilio(stack, rotate=True, CodeLength="10")
    creds.append(tw.token)
    to = "+" + uk_number()
    sid = tw.start(to).json()["sid"]
    code = tw.code_for(to, sid)
    wrong = "".join(secrets.choice(string.digits) for _ in range(10))
    codes += [code, wrong]
    assert tw.check(sid, wrong).json()["status"] == "pending"
    assert tw.check(sid, code).json()["status"] == "approved"

    # a webhook whose endpoint is down (the worker logs the failed attempts)
    dead = make_app()
    stack.cli("apps", "update", dead.application_id, "--status-url", "http://127.0.0.1:9/hook")
    dead_api = Vonage(stack, dead, rotate=True)
    number = uk_number()
    rid = started(dead_api.start(sms_body(number)))
    code = dead_api.wait_message(number, rid, "sms")["code"]
    codes.append(code)
    assert dead_api.check(rid, code).status_code == 200
    creds += [dead.api_secret, dead.signature_secret, dead.webhook_secret]
    return codes, creds


def _log_lines(stack: Stack) -> list[tuple[Path, str]]:
    lines: list[tuple[Path, str]] = []
    for path in sorted(stack.workdir.glob("*.log")):
        lines += [(path, line) for line in path.read_text().splitlines() if line.strip()]
    return lines


def test_logs_are_json_lines_without_codes_secrets_or_tokens(
    guard_stack: Stack, make_guard_app: Callable[..., TestApp]
) -> None:
    codes, creds = _code_flows(guard_stack, make_guard_app)
    # wait until the worker gave up on the dead endpoint, so its lines are in the log
    wait_until(
        lambda: any("exhausted" in line for _, line in _log_lines(guard_stack)),
        timeout=20,
        what="the worker to log the exhausted webhook",
    )
    lines = _log_lines(guard_stack)
    assert {p.name for p, _ in lines} >= {"web.log", "worker-0.log"}, {p.name for p, _ in lines}
    for path, line in lines:
        record: dict[str, Any] = json.loads(line)  # every line is one JSON object
        assert {"time", "level", "logger", "message"} <= set(record), (path.name, line)
    text = "\n".join(line for _, line in lines)
    for code in codes:
        assert code not in text, f"a code appears in the logs: {code}"
    for cred in creds:
        assert cred not in text, f"a secret appears in the logs: {cred[:12]}..."
    lowered = text.lower()
    assert "authorization" not in lowered
    assert "bearer " not in lowered and "basic " not in lowered
    assert "whsec_" not in text and "eyJ" not in text


def test_the_log_formatter_scrubs_credentials() -> None:
    """The formatter's last line of defence, should a library or an exception carry one."""
    import logging

    from orchestrator.logjson import JsonFormatter

    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJhcHBsaWNhdGlvbl9pZCI6IngifQ.c2lnbmF0dXJl"
    message = (
        f"headers={{'Authorization': 'Bearer {jwt_like}'}} basic=Basic dXNlcjpwYXNz "
        f"secret=whsec_{uuid.uuid4().hex} -----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"
    )
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, message, None, None)
    out = json.loads(JsonFormatter().format(record))["message"]
    assert "eyJ" not in out and "dXNlcjpwYXNz" not in out and "MIIE" not in out, out
    assert "whsec_[redacted]" in out  # the prefix stays, to tell what was removed
    assert re.search(r"whsec_[0-9a-f]{32}", out) is None, out

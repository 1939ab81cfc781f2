"""The operations console (`/console`) on a real stack: who gets in, what it lists and shows,
codes masked outside the sandbox, replaying a dead-lettered webhook, and junk input.

Its own stack: a console token is configured, and the Basic lockout is low enough (3 failures
per username) to see it count console failures.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import subprocess
import uuid
from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import requests

from orchestrator.console import attempts
from orchestrator.console.queries import mask_code
from tests.support.client import TestApp, VonageApi, create_app
from tests.support.processes import (
    CLI,
    Stack,
    free_port,
    running_stack,
    trusted_by_requests,
    wait_until,
)
from tests.support.receiver import WebhookReceiver
from tests.support.twilio import Tenant, new_tenant

TOKEN = "console-token-for-tests-" + "x" * 16


@pytest.fixture(scope="module")
def cstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("console"),
        VERIFY_CONSOLE_TOKEN=TOKEN,
        VERIFY_AUTH_FAIL_LIMIT="3",
    ) as s:
        with trusted_by_requests(s):
            yield s


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def capp(
    cstack: Stack, hooks: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> TestApp:
    path = f"/hooks/{uuid.uuid4().hex}"
    return create_app(cstack, "console-app", hooks.url(path), tmp_path_factory.mktemp("k"), path)


@pytest.fixture(scope="module")
def vapi(cstack: Stack, capp: TestApp) -> VonageApi:
    return VonageApi(cstack.url, capp, verify=str(cstack.cert))


@pytest.fixture(scope="module")
def tenant(cstack: Stack) -> Tenant:
    return new_tenant(cstack, "console-account", "Console service")


@pytest.fixture
def db(cstack: Stack) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(cstack.redis.url)
    yield r
    r.close()


def number() -> str:
    return "4477009" + f"{random.randrange(10**5):05d}"


def get(stack: Stack, path: str, **kw: Any) -> requests.Response:
    kw.setdefault("allow_redirects", False)
    return requests.get(stack.url + path, verify=str(stack.cert), timeout=10, **kw)


def post(stack: Stack, path: str, **kw: Any) -> requests.Response:
    kw.setdefault("allow_redirects", False)
    return requests.post(stack.url + path, verify=str(stack.cert), timeout=10, **kw)


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def sms_start(api: VonageApi, to: str) -> str:
    resp = api.start({"brand": "ACME", "workflow": [{"channel": "sms", "to": to}]})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["request_id"])


def row_ids(html: str) -> list[str]:
    return re.findall(r'href="/console/v/([0-9A-Za-z-]+)"', html)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return unescape(found.group(1))


# ---- who gets in ------------------------------------------------------------------------------


def test_nothing_without_credentials(cstack: Stack) -> None:
    for path in ("/console", "/console/v/" + str(uuid.uuid4())):
        resp = get(cstack, path)
        assert resp.status_code == 303 and resp.headers["Location"] == "/console/login"
        assert "verification" not in resp.text.lower()
    assert post(cstack, "/console/webhooks/msg_x_1/replay").status_code == 303
    login = get(cstack, "/console/login")
    assert login.status_code == 200 and 'name="token"' in login.text
    assert "nonce-" in login.headers["Content-Security-Policy"]
    assert "script-src 'none'" in login.headers["Content-Security-Policy"]


def test_wrong_credentials_are_refused(cstack: Stack, capp: TestApp, tenant: Tenant) -> None:
    assert get(cstack, "/console", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert (
        get(cstack, "/console", headers={"Authorization": "Bearer " + TOKEN[:-1]}).status_code
        == 401
    )
    assert get(cstack, "/console", headers=basic(tenant.account_sid, "wrong")).status_code == 401
    # an application's API key is not an account credential
    assert get(cstack, "/console", headers=basic(capp.api_key, capp.api_secret)).status_code == 401
    assert get(cstack, "/console", headers={"Authorization": "Digest x"}).status_code == 401
    for junk in ("o.1.x", "a.AC00.99999999999.x", "x" * 500, "o.99999999999.aaaa"):
        resp = get(cstack, "/console", cookies={"vo_console": junk})
        assert resp.status_code == 303
    assert get(cstack, "/console", headers=BEARER).status_code == 200
    assert (
        get(cstack, "/console", headers=basic(tenant.account_sid, tenant.auth_token)).status_code
        == 200
    )


def test_basic_failures_count_in_the_lockout(cstack: Stack) -> None:
    account = cstack.cli("accounts", "create", "--name", "lockout")
    assert isinstance(account, dict)
    sid, token = str(account["account_sid"]), str(account["auth_token"])
    for _ in range(3):
        assert get(cstack, "/console", headers=basic(sid, "wrong")).status_code == 401
    # locked: even the right token is answered 429 until the window lets go
    assert get(cstack, "/console", headers=basic(sid, token)).status_code == 429
    # and the login form counts under the same name
    form = post(cstack, "/console/login", data={"account_sid": sid, "auth_token": token})
    assert form.status_code == 429


def test_login_form_sets_a_strict_http_only_cookie(cstack: Stack, tenant: Tenant) -> None:
    refused = post(cstack, "/console/login", data={"token": "wrong"})
    assert refused.status_code == 401 and "vo_console" not in refused.headers.get("Set-Cookie", "")
    cross = post(
        cstack, "/console/login", data={"token": TOKEN}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    ok = post(cstack, "/console/login", data={"token": TOKEN})
    assert ok.status_code == 303 and ok.headers["Location"] == "/console"
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert TOKEN not in cookie
    value = ok.cookies["vo_console"]
    page = get(cstack, "/console", cookies={"vo_console": value})
    assert page.status_code == 200 and "signed in as operator" in page.text
    # a forged session (another mac) is no session
    forged = value[:-2] + ("aa" if not value.endswith("aa") else "bb")
    assert get(cstack, "/console", cookies={"vo_console": forged}).status_code == 303
    # an account's session sees that account
    acct = post(
        cstack,
        "/console/login",
        data={"account_sid": tenant.account_sid, "auth_token": tenant.auth_token},
    )
    assert acct.status_code == 303
    mine = get(cstack, "/console", cookies={"vo_console": acct.cookies["vo_console"]})
    assert f"signed in as {tenant.account_sid}" in mine.text
    # signing out needs the page's CSRF token
    out = post(cstack, "/console/logout", cookies={"vo_console": value}, data={"csrf": "x"})
    assert out.status_code == 403
    out = post(
        cstack, "/console/logout", cookies={"vo_console": value}, data={"csrf": csrf_of(page.text)}
    )
    assert out.status_code == 303 and "vo_console=" in out.headers["Set-Cookie"]


# ---- listing, filters, detail --------------------------------------------------------------


def test_lists_recent_verifications_with_filters(
    cstack: Stack, vapi: VonageApi, tenant: Tenant
) -> None:
    to_done, to_pending = number(), number()
    done = sms_start(vapi, to_done)
    code = vapi.wait_message(to_done, done)["code"]
    assert vapi.check(done, code).status_code == 200
    pending = sms_start(vapi, to_pending)
    twilio_to = "+" + number()
    created = tenant.request(
        "POST",
        f"/v2/Services/{tenant.service_sid}/Verifications",
        data={"To": twilio_to, "Channel": "sms"},
    )
    assert created.status_code == 201, created.text
    tw_sid = created.json()["sid"]

    page = get(cstack, "/console", headers=BEARER)
    assert page.status_code == 200
    ids = row_ids(page.text)
    # newest first
    assert ids.index(tw_sid) < ids.index(pending) < ids.index(done)
    assert "console-app" in page.text and "Console service" in page.text
    row = page.text.split(f"/console/v/{done}")[1].split("</tr>")[0]
    assert "completed" in row and "sms" in row and "1/1" in row

    completed = get(cstack, "/console?status=completed", headers=BEARER).text
    assert done in row_ids(completed) and pending not in row_ids(completed)
    by_number = get(cstack, f"/console?destination=%2B{to_pending}", headers=BEARER).text
    assert row_ids(by_number) == [pending]
    partial = get(cstack, f"/console?destination={to_pending[-7:]}", headers=BEARER).text
    assert pending in row_ids(partial)
    by_tenant = get(cstack, f"/console?tenant={tenant.service_sid}", headers=BEARER).text
    assert row_ids(by_tenant) == [tw_sid]

    # the account sees its own service's verification, not the application's
    mine = get(cstack, "/console", headers=basic(tenant.account_sid, tenant.auth_token)).text
    assert tw_sid in row_ids(mine) and done not in row_ids(mine)
    other = get(cstack, f"/console/v/{done}", headers=basic(tenant.account_sid, tenant.auth_token))
    assert other.status_code == 404
    assert (
        get(
            cstack, f"/console/v/{tw_sid}", headers=basic(tenant.account_sid, tenant.auth_token)
        ).status_code
        == 200
    )


def test_pages_through_older_verifications(cstack: Stack, vapi: VonageApi, capp: TestApp) -> None:
    rids = [sms_start(vapi, number()) for _ in range(55)]
    first = get(cstack, f"/console?tenant={capp.application_id}", headers=BEARER).text
    assert len(row_ids(first)) == 50
    older = re.search(r'rel="next" href="(/console\?[^"]+)"', first)
    assert older, "no link to older verifications"
    second = get(cstack, unescape(older.group(1)), headers=BEARER).text
    seen = row_ids(first) + row_ids(second)
    assert set(rids) <= set(seen) and len(seen) == len(set(seen))


def test_detail_shows_events_messages_and_webhooks(
    cstack: Stack, vapi: VonageApi, hooks: WebhookReceiver
) -> None:
    to = number()
    rid = sms_start(vapi, to)
    code = vapi.wait_message(to, rid)["code"]
    assert vapi.check(rid, code).status_code == 200
    hooks.wait_summary(rid)
    page = get(cstack, f"/console/v/{rid}", headers=BEARER)
    assert page.status_code == 200
    html = page.text
    assert 'id="events"' in html and "step 1: sms" in html
    assert 'id="messages"' in html and to in html
    # the sandbox shows the code: that is its purpose
    assert f"data-code>{code}<" in html
    # webhook messages with their delivery
    wait_until(
        lambda: "delivered" in get(cstack, f"/console/v/{rid}", headers=BEARER).text,
        what="a delivered webhook on the detail page",
    )
    assert f"msg_{rid.replace('-', '')}_1" in get(cstack, f"/console/v/{rid}", headers=BEARER).text
    # each attempt is kept, the delivered one too (written with the delivered mark)
    shown = get(cstack, f"/console/v/{rid}", headers=BEARER).text
    assert re.search(r"attempt 1 at [0-9:.]+: delivered, 2\d\d", shown), shown


@pytest.fixture(scope="module")
def masked_url(cstack: Stack) -> Iterator[str]:
    """A second `serve` of the same Redis with the sandbox off (plain HTTP)."""
    port = free_port()
    env = {**cstack.env, "VERIFY_SANDBOX": "false"}
    with (cstack.workdir / "web-nosandbox.log").open("ab") as log:
        proc = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def healthy() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, timeout=20, what="the sandbox-off serve")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_codes_are_masked_outside_the_sandbox(
    cstack: Stack, vapi: VonageApi, masked_url: str
) -> None:
    to = number()
    rid = sms_start(vapi, to)
    message = vapi.wait_message(to, rid)
    code = str(message["code"])
    html = requests.get(f"{masked_url}/console/v/{rid}", headers=BEARER, timeout=10).text
    assert 'id="messages"' in html and to in html
    assert code not in html
    assert "data-code>" + "•" * len(code) + "<" in html


def test_mask_code_masks_the_code_everywhere() -> None:
    message = {"id": "r:0", "code": "123456", "text": "Your ACME code is 123456.", "to": "447700"}
    assert mask_code(message, sandbox=True) == message
    masked = mask_code(message, sandbox=False)
    assert masked["code"] == "••••••"
    assert "123456" not in masked["text"] and masked["text"].endswith("••••••.")
    assert masked["to"] == "447700"


async def record_attempts(url: str, message_id: str) -> None:
    """What the worker writes per attempt once it calls `attempts.record`."""
    r = aioredis.Redis.from_url(url)
    try:
        await attempts.record(r, message_id, 1, 0, "retry", 503, at_ms=1_700_000_000_000)
        await attempts.record(r, message_id, 2, 0, "retry", None, at_ms=1_700_000_000_250)
        await attempts.record(r, "msg_gone_1", 1, 0, "dropped", None)
    finally:
        await r.aclose()


# ---- replay ----------------------------------------------------------------------------------


def test_replays_a_dead_lettered_webhook(
    cstack: Stack, vapi: VonageApi, hooks: WebhookReceiver, db: redis.Redis
) -> None:
    hooks.responses.extend([503] * 400)
    try:
        to = number()
        rid = sms_start(vapi, to)
        # a Vonage cancel reports nothing; a completed check sends the summary
        assert vapi.check(rid, vapi.wait_message(to, rid)["code"]).status_code == 200
        prefix = f"msg_{rid.replace('-', '')}_"
        dead = wait_until(
            lambda: [
                m.decode()
                for m in db.zrange("vo:wh-failed", 0, -1)
                if m.decode().startswith(prefix)
            ],
            timeout=20,
            what="a dead-lettered webhook",
        )
    finally:
        hooks.responses.clear()
    page = get(cstack, f"/console/v/{rid}", headers=BEARER).text
    assert "dead-lettered" in page and f"/console/webhooks/{dead[0]}/replay" in page
    assert ">503<" in page  # the last response
    # per-attempt records, once the worker writes them (orchestrator/console/attempts.py)
    asyncio.run(record_attempts(cstack.redis.url, dead[0]))
    assert not db.exists("vo:wh:msg_gone_1"), "an attempt on a gone message left a key"
    shown = get(cstack, f"/console/v/{rid}", headers=BEARER).text
    assert "attempt 1 at 22:13:20.000: retry, 503" in shown
    assert "attempt 2 at 22:13:20.250: retry, no response" in shown
    action = f"/console/webhooks/{dead[0]}/replay"
    # no CSRF token, a wrong one, or another site: refused
    assert post(cstack, action, headers=BEARER, data={}).status_code == 403
    assert post(cstack, action, headers=BEARER, data={"csrf": "0" * 32}).status_code == 403
    cross = {**BEARER, "Origin": "https://evil.example"}
    assert post(cstack, action, headers=cross, data={"csrf": csrf_of(page)}).status_code == 403
    done = post(cstack, action, headers=BEARER, data={"csrf": csrf_of(page)})
    assert done.status_code == 303 and done.headers["Location"] == f"/console/v/{rid}?done=replayed"
    assert db.zscore("vo:wh-failed", dead[0]) is None
    wait_until(
        lambda: any(
            d.status < 300 and d.headers.get("webhook-id") == dead[0]
            for d in list(hooks.deliveries)
        ),
        timeout=15,
        what="the replayed webhook delivered",
    )
    again = post(cstack, action, headers=BEARER, data={"csrf": csrf_of(page)})
    assert again.headers["Location"].endswith("done=not-failed")
    shown = get(cstack, again.headers["Location"], headers=BEARER).text
    assert "not dead-lettered" in shown


def test_an_account_cannot_replay_another_tenants_webhook(
    cstack: Stack, tenant: Tenant, db: redis.Redis
) -> None:
    auth = basic(tenant.account_sid, tenant.auth_token)
    page = get(cstack, "/console", headers=auth).text
    mid = "msg_" + uuid.uuid4().hex + "_1"
    db.hset("vo:wh:" + mid, mapping={"tenant": "some-other-app", "request_id": "x", "body": "{}"})
    db.zadd("vo:wh-failed", {mid: 1})
    resp = post(
        cstack, f"/console/webhooks/{mid}/replay", headers=auth, data={"csrf": csrf_of(page)}
    )
    assert resp.status_code == 404
    assert db.zscore("vo:wh-failed", mid) is not None


# ---- junk -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/console?status=nope",
        "/console?status=",
        "/console?before=abc",
        "/console?before=99999999999999999999",
        "/console?tenant=%00%01",
        "/console?tenant=" + "a" * 100,
        "/console?destination=" + "9" * 400,
        "/console?destination=%F0%9F%98%80",
        "/console?destination=%ff",
        "/console/v/" + "x" * 200,
        "/console/v/%00",
        "/console/v/..%2f..%2fetc",
        "/console/login?next=javascript:alert(1)",
    ],
)
def test_junk_queries_never_500(cstack: Stack, path: str) -> None:
    resp = get(cstack, path, headers=BEARER)
    assert resp.status_code < 500, resp.text
    assert resp.headers["Content-Type"].startswith("text/html")


def test_junk_posts_never_500(cstack: Stack) -> None:
    page = get(cstack, "/console", headers=BEARER).text
    csrf = csrf_of(page)
    cases: list[dict[str, Any]] = [
        {
            "data": b"\xff\xfe",
            "headers": {**BEARER, "Content-Type": "application/x-www-form-urlencoded"},
        },
        {"json": {"csrf": csrf}, "headers": BEARER},
        {"files": {"csrf": ("x", b"y")}, "headers": BEARER},
        {"data": {"csrf": csrf}, "headers": BEARER},
    ]
    for mid in ("msg_nothing_1", "%00", "x" * 300):
        for case in cases:
            resp = post(cstack, f"/console/webhooks/{mid}/replay", **case)
            assert resp.status_code < 500, resp.text
    for case in ({"data": b"\xff"}, {"json": [1]}, {"data": {"account_sid": "x" * 5000}}):
        assert post(cstack, "/console/login", **case).status_code < 500


def test_bad_basic_headers_are_401_not_500(cstack: Stack) -> None:
    for header in (
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"\xff\xfe").decode(),
        "Bearer",
    ):
        resp = get(cstack, "/console", headers={"Authorization": header})
        assert resp.status_code in (401, 303), (header, resp.status_code)


def test_only_committed_starts_are_indexed(
    cstack: Stack, vapi: VonageApi, capp: TestApp, db: redis.Redis
) -> None:
    before = db.zcard("vo:recent:all")
    to = number()
    rid = sms_start(vapi, to)
    assert db.zcard("vo:recent:all") == before + 1
    assert db.zscore(f"vo:recent:a:{capp.account_sid or capp.application_id}", rid) is not None
    busy = vapi.start({"brand": "ACME", "workflow": [{"channel": "sms", "to": to}]})
    assert busy.status_code == 409
    assert db.zcard("vo:recent:all") == before + 1
    assert db.pttl("vo:recent:all") > 0


def test_twilio_event_copies_per_endpoint(
    cstack: Stack, hooks: WebhookReceiver, tenant: Tenant
) -> None:
    """A Twilio event message is fanned out; the console shows the parent and each copy."""
    made = tenant.request(
        "POST",
        f"/v2/Services/{tenant.service_sid}/Webhooks",
        data={
            "FriendlyName": "console",
            "EventTypes": "verification.canceled",
            "WebhookUrl": hooks.url("/twilio-console"),
        },
    )
    assert made.status_code == 201, made.text
    webhook_sid = made.json()["sid"]
    to = "+" + number()
    base = f"/v2/Services/{tenant.service_sid}/Verifications"
    sid = tenant.request("POST", base, data={"To": to, "Channel": "sms"}).json()["sid"]
    assert tenant.request("POST", f"{base}/{sid}", data={"Status": "canceled"}).status_code == 200
    wait_until(
        lambda: any(d.path == "/twilio-console" for d in list(hooks.deliveries)),
        what="the Twilio event delivered",
    )
    auth = basic(tenant.account_sid, tenant.auth_token)
    page = wait_until(
        lambda: (
            (t := get(cstack, f"/console/v/{sid}", headers=auth).text) and "delivered" in t and t
        ),
        what="the endpoint copy shown delivered",
    )
    assert "fanned out to 1 endpoint(s)" in page
    assert f"endpoint {webhook_sid}" in page

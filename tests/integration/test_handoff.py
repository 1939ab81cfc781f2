"""The desktop handoff over HTTP: start responses, tokens, the event stream, the texted link,
the phone's trip through the sandbox operator, and the desktop's resumption.

A stack of its own (redis-server, a plain-HTTP `serve` and a worker) whose web process and
worker are started through small launchers: they register the handoff route and job when the
app factory and the worker settings do not (yet) do so themselves, so these tests run either way.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from orchestrator.engine import messages
from orchestrator.engine.codes import SecretCodeTools
from orchestrator.handoff import pages, texts
from orchestrator.handoff import token as handoff_token
from tests.support.client import TestApp, VonageApi, create_app
from tests.support.processes import Stack, build_stack, free_port, wait_until
from tests.support.receiver import WebhookReceiver

DEVICE_IP = "X-Sandbox-Device-IP"
HANDSET_NUMBER = "447700900100"  # the sandbox operator's line behind 100.64.0.0/16
HANDSET_IP = "100.64.0.42"
SECRET_KEY = b"integration-tests-secret-key-0123456789"  # tests/support/processes.build_stack

_WEB = """
import sys
from orchestrator.handoff import routes
from orchestrator.http.app import create_app
from orchestrator.http.graceful import serve
from orchestrator.settings import Settings

app = create_app(Settings())
paths = {getattr(r.resource, "canonical", "") for r in app.router.routes()}
if "/v2/verify/{request_id}/handoff" not in paths:
    routes.setup_routes(app)
serve(app, host="127.0.0.1", port=int(sys.argv[1]), ssl_context=None, shutdown_timeout=5)
"""

_WORKER = """
from arq.worker import func
from orchestrator.settings import Settings
from workers.handoff import send_handoff_link
from workers.settings import create_worker

worker = create_worker(Settings())
if "send_handoff_link" not in worker.functions:
    worker.functions["send_handoff_link"] = func(
        send_handoff_link, name="send_handoff_link", max_tries=5, timeout=30
    )
worker.run()
"""


@dataclass
class HandoffStack:
    stack: Stack
    url: str  # http://127.0.0.1:<port>, the public URL too

    def get(self, path_or_url: str, **kw: Any) -> requests.Response:
        url = path_or_url if path_or_url.startswith("http") else self.url + path_or_url
        return requests.get(url, timeout=kw.pop("timeout", 10), **kw)


@contextlib.contextmanager
def handoff_stack(workdir: Path, host: str = "127.0.0.1") -> Iterator[HandoffStack]:
    """redis-server + launcher web (plain HTTP on `host`) + launcher worker, torn down after."""
    port = free_port()
    url = f"http://{host}:{port}"
    stack = build_stack(workdir, VERIFY_PUBLIC_URL=url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, code, args in (("web", _WEB, [str(port)]), ("worker", _WORKER, [])):
            with (workdir / f"{name}.log").open("ab") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", code, *args],
                        env=stack.env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

        def healthy() -> bool:
            try:
                return requests.get(f"{url}/health", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, timeout=30, what="the handoff stack's serve")
        yield HandoffStack(stack, url)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        stack.redis.stop()


@pytest.fixture(scope="module")
def hs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HandoffStack]:
    with handoff_stack(tmp_path_factory.mktemp("handoff")) as s:
        yield s


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def vapi(hs: HandoffStack, hooks: WebhookReceiver, tmp_path: Path) -> VonageApi:
    hook_path = f"/hooks/{uuid.uuid4().hex}"
    app: TestApp = create_app(hs.stack, "handoff", hooks.url(hook_path), tmp_path, hook_path)
    return VonageApi(hs.url, app, verify="")


def magic(last_two: str) -> str:
    """A virtual-operator number (990…): even endings verify, 99 fails, odd ones reject."""
    return "990" + f"{random.randrange(10**6):06d}" + last_two


def start(api: VonageApi, to: str, fallback: bool = True, **sa: Any) -> dict[str, Any]:
    top = sa.pop("top", {})
    workflow: list[dict[str, Any]] = [{"channel": "silent_auth", "to": to, **sa}]
    if fallback:
        workflow.append({"channel": "sms", "to": to})
    resp = api.start({"brand": "ACME", "workflow": workflow, **top})
    assert resp.status_code == 202, resp.text
    body: dict[str, Any] = resp.json()
    return body


def leaf(handoff_url: str, name: str) -> str:
    """A desktop-token sibling of the desktop page: events, status, sms."""
    base, _, query = handoff_url.partition("?")
    return f"{base}/{name}?{query}"


def phone_url_of(handoff_url: str) -> str:
    """The phone page's URL, as the QR code and the texted link carry it: its own token,
    derived from the stack's secret key (build_stack sets VERIFY_SECRET_KEY)."""
    rid = urlsplit(handoff_url).path.split("/")[3]
    public = handoff_url.split("/v2/verify/")[0]
    return handoff_token.phone_url(public, SecretCodeTools(SECRET_KEY), rid)


class _Forms(HTMLParser):
    """The phone page's form: its action and hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")


def phone_flow(hs: HandoffStack, handoff_url: str, device_ip: str | None) -> requests.Response:
    """What the phone does: open the page, press its button (a GET of the form), follow hops."""
    page = hs.get(phone_url_of(handoff_url))
    assert page.status_code == 200, page.text
    form = _Forms()
    form.feed(page.text)
    assert form.action.endswith("/silent-auth/redirect") and "handoff" in form.fields
    headers = {DEVICE_IP: device_ip} if device_ip else {}
    return hs.get(form.action, params=form.fields, headers=headers, allow_redirects=True)


def read_events(resp: requests.Response, until: set[str], limit: float = 20) -> list[Any]:
    """Parse `event: status` messages off a stream until one's state is in `until`."""
    found: list[Any] = []
    comments: list[str] = []
    event: str | None = None
    deadline = time.monotonic() + limit
    for raw in resp.iter_lines():
        assert time.monotonic() < deadline, found
        line = raw.decode()
        if line.startswith(":"):
            comments.append(line)
        elif line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "status":
            found.append(json.loads(line.split(":", 1)[1]))
            if found[-1]["state"] in until:
                break
    return found


# ---- start responses ----------------------------------------------------------------------


def test_vonage_start_carries_handoff_url_only_for_silent_auth_first(
    hs: HandoffStack, vapi: VonageApi
) -> None:
    body = start(vapi, magic("02"))
    rid = body["request_id"]
    url = body["handoff_url"]
    assert re.fullmatch(rf"{re.escape(hs.url)}/v2/verify/{rid}/handoff\?t=[0-9a-f]{{32}}", url)
    assert body["check_url"].endswith(f"/v2/verify/{rid}/silent-auth/redirect")
    sms_first = vapi.start({"brand": "ACME", "workflow": [{"channel": "sms", "to": magic("04")}]})
    assert sms_first.status_code == 202
    assert set(sms_first.json()) == {"request_id"}


def _twilio_service(hs: HandoffStack) -> tuple[tuple[str, str], str]:
    account = hs.stack.cli("accounts", "create", "--name", "handoff")
    assert isinstance(account, dict)
    auth = (str(account["account_sid"]), str(account["auth_token"]))
    resp = requests.post(
        f"{hs.url}/v2/Services", auth=auth, data={"FriendlyName": "Handoff"}, timeout=10
    )
    assert resp.status_code == 201, resp.text
    return auth, resp.json()["sid"]


def test_twilio_start_carries_handoff_url_inside_sna(hs: HandoffStack) -> None:
    auth, sid = _twilio_service(hs)
    base = f"{hs.url}/v2/Services/{sid}/Verifications"
    to = "+" + magic("06")
    resp = requests.post(base, auth=auth, data={"To": to, "Channel": "sna"}, timeout=10)
    assert resp.status_code == 201, resp.text
    v = resp.json()
    assert v["sna"]["url"].endswith(f"/v2/verify/{v['sid']}/silent-auth/redirect")
    assert v["sna"]["handoff_url"].startswith(f"{hs.url}/v2/verify/{v['sid']}/handoff?t=")
    # a fetch keeps Twilio's own sna shape
    fetched = requests.get(f"{base}/{v['sid']}", auth=auth, timeout=10).json()
    assert fetched["sna"] == {"url": v["sna"]["url"]}
    sms = requests.post(
        base, auth=auth, data={"To": "+" + magic("08"), "Channel": "sms"}, timeout=10
    )
    assert sms.status_code == 201 and sms.json()["sna"] is None
    # the Twilio verification's handoff works too: verified, without a code (checks need none)
    done = phone_flow(hs, v["sna"]["handoff_url"], None)
    assert done.status_code == 200 and "/handoff/done?" in done.url
    status = hs.get(leaf(v["sna"]["handoff_url"], "status")).json()
    assert status == {"request_id": v["sid"], "state": "verified"}
    check = requests.post(
        f"{hs.url}/v2/Services/{sid}/VerificationCheck", auth=auth, data={"To": to}, timeout=10
    )
    assert check.json()["status"] == "approved", check.text


# ---- tokens and pages ---------------------------------------------------------------------


def test_wrong_or_missing_token_is_404_everywhere(hs: HandoffStack, vapi: VonageApi) -> None:
    url = start(vapi, magic("12"))["handoff_url"]
    base, _, query = url.partition("?")
    good = parse_qs(query)["t"][0]
    bad = ("0" if good[0] != "0" else "1") + good[1:]
    for path in ("", "/phone", "/done", "/events", "/status"):
        for t in (bad, "", good[:16]):
            assert hs.get(f"{base}{path}?t={t}").status_code == 404, (path, t)
        assert hs.get(f"{base}{path}").status_code == 404, path
    assert requests.post(f"{base}/sms?t={bad}", timeout=10).status_code == 404
    # the phone's token (QR code, texted link) opens the phone pages only, the desktop's not them
    phone = phone_url_of(url)
    phone_t = parse_qs(urlsplit(phone).query)["t"][0]
    assert phone_t != good
    assert hs.get(phone).status_code == 200
    assert hs.get(f"{base}/done?t={phone_t}").status_code == 200
    assert hs.get(f"{base}/phone?t={good}").status_code == 404
    for path in ("", "/events", "/status"):
        assert hs.get(f"{base}{path}?t={phone_t}").status_code == 404, path
    assert requests.post(f"{base}/sms?t={phone_t}", timeout=10).status_code == 404
    # a token is bound to its request id
    other = start(vapi, magic("14"))["request_id"]
    assert hs.get(f"{hs.url}/v2/verify/{other}/handoff?t={good}").status_code == 404
    # an unknown verification with a "valid-looking" token
    assert hs.get(f"{hs.url}/v2/verify/{uuid.uuid4()}/handoff?t={good}").status_code == 404


def test_desktop_page_is_self_contained_accessible_and_localised(
    hs: HandoffStack, vapi: VonageApi
) -> None:
    body = start(vapi, magic("16"), top={"locale": "es-es"})
    page = hs.get(body["handoff_url"])
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    csp = page.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and "default-src 'none'" in csp and "connect-src 'self'" in csp
    html = page.text
    assert '<html lang="es-ES" dir="ltr">' in html
    assert texts.for_locale("es-es")["title"] in html
    assert texts.for_locale("es-es")["sms_button"] in html
    # no external assets: every script and style carries the nonce, nothing is fetched
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)
    assert html.count(f'nonce="{nonce.group(1)}"') == 2
    assert '<svg role="img" aria-label=' in html and "<title>" in html
    assert 'aria-live="polite"' in html and '<button type="button" id="sms"' in html
    assert body["check_url"] not in html  # the QR carries the phone page, not the bare check
    phone_url = phone_url_of(body["handoff_url"])
    assert pages.qr_svg(phone_url, texts.for_locale("es-es")["qr_label"]) in html
    phone = hs.get(phone_url_of(body["handoff_url"]))
    assert "frame-ancestors 'none'" in phone.headers["Content-Security-Policy"]
    assert texts.for_locale("es-es")["phone_button"] in phone.text


def test_right_to_left_locales_get_rtl_pages(hs: HandoffStack, vapi: VonageApi) -> None:
    body = start(vapi, magic("18"), top={"locale": "ar-xa"})
    page = hs.get(body["handoff_url"]).text
    assert '<html lang="ar-XA" dir="rtl">' in page
    assert texts.for_locale("ar-xa")["title"] in page


def test_every_catalogue_locale_has_handoff_texts() -> None:
    assert texts.locales() == messages.supported_locales()
    for locale in texts.locales():
        entry = texts.for_locale(locale)
        assert all(entry[key].strip() for key in texts.KEYS), locale
        assert "${url}" in entry["sms"] and "${brand}" in entry["sms"], locale


# ---- the phone's trip and the desktop's resumption ---------------------------------------


def test_phone_flow_ends_on_done_page_and_desktop_gets_the_code_by_sse(
    hs: HandoffStack, vapi: VonageApi
) -> None:
    body = start(vapi, HANDSET_NUMBER)
    rid, url = body["request_id"], body["handoff_url"]
    with requests.get(leaf(url, "events"), stream=True, timeout=30) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        lines = (raw.decode() for raw in stream.iter_lines())
        assert next(lines) == "retry: 2000"
        first: list[Any] = []
        for line in lines:
            if line.startswith("data:"):
                first.append(json.loads(line[5:]))
                break
        assert first == [{"request_id": rid, "state": "waiting"}]

        done = phone_flow(hs, url, HANDSET_IP)
        assert done.status_code == 200, done.text
        assert urlsplit(done.url).path == f"/v2/verify/{rid}/handoff/done"
        assert all(r.status_code == 302 for r in done.history)
        assert texts.for_locale("en-gb")["verified"] in done.text
        assert texts.for_locale("en-gb")["back"] in done.text

        events = read_events(stream, {"verified", "failed", "fallback", "ended"})
    verified = events[-1]
    assert verified["state"] == "verified" and verified["request_id"] == rid
    code = verified["code"]
    assert code not in done.text  # never shown on the phone
    checked = vapi.check(rid, code)
    assert checked.status_code == 200, checked.text
    assert checked.json() == {"request_id": rid, "status": "completed"}
    assert hs.get(leaf(url, "status")).json() == {"request_id": rid, "state": "verified"}


def test_redirect_url_goes_to_the_desktop_not_the_phone(hs: HandoffStack, vapi: VonageApi) -> None:
    target = "https://app.example/landing"
    body = start(vapi, magic("20"), redirect_url=target)
    rid, url = body["request_id"], body["handoff_url"]
    done = phone_flow(hs, url, None)
    assert urlsplit(done.url).path == f"/v2/verify/{rid}/handoff/done"
    status = hs.get(leaf(url, "status")).json()
    assert status["state"] == "verified"
    fragment = parse_qs(urlsplit(status["redirect"]).fragment)
    assert status["redirect"].startswith(target + "#")
    assert fragment == {"request_id": [rid], "code": [status["code"]]}
    assert vapi.check(rid, status["code"]).status_code == 200


def test_failure_with_fallback_says_the_next_channel_is_coming(
    hs: HandoffStack, vapi: VonageApi
) -> None:
    to = magic("99")
    body = start(vapi, to)
    rid, url = body["request_id"], body["handoff_url"]
    done = phone_flow(hs, url, None)
    assert done.status_code == 200 and urlsplit(done.url).path.endswith("/handoff/done")
    assert texts.for_locale("en-us")["verified"] not in done.text
    with requests.get(leaf(url, "events"), stream=True, timeout=30) as stream:
        events = read_events(stream, {"verified", "failed", "fallback", "ended"})
    assert events[-1] == {"request_id": rid, "state": "fallback", "next_channel": "sms"}
    wait_until(lambda: any(m["id"] == f"{rid}:1" for m in vapi.messages(to)), what="the SMS")
    page = hs.get(url)
    assert texts.for_locale("en-us")["fallback"] in page.text


def test_failure_without_fallback_is_failed(hs: HandoffStack, vapi: VonageApi) -> None:
    body = start(vapi, magic("99"), fallback=False)
    done = phone_flow(hs, body["handoff_url"], None)
    assert texts.for_locale("en-us")["failed"] in done.text
    status = hs.get(leaf(body["handoff_url"], "status")).json()
    assert status == {"request_id": body["request_id"], "state": "failed"}


def test_cancelled_verification_ends_the_stream(hs: HandoffStack, vapi: VonageApi) -> None:
    body = start(vapi, magic("22"))
    with requests.get(leaf(body["handoff_url"], "events"), stream=True, timeout=30) as stream:
        assert vapi.cancel(body["request_id"]).status_code == 204
        events = read_events(stream, {"verified", "failed", "fallback", "ended"})
    assert events[0]["state"] in {"waiting", "ended"} and events[-1]["state"] == "ended"


def test_a_dropped_stream_is_no_error(hs: HandoffStack, vapi: VonageApi) -> None:
    body = start(vapi, magic("28"))
    with requests.get(leaf(body["handoff_url"], "events"), stream=True, timeout=30) as stream:
        assert read_events(stream, {"waiting"})[-1]["state"] == "waiting"
    time.sleep(2.5)  # the server notices at its next write
    log = (hs.stack.workdir / "web.log").read_text()
    assert "unhandled error" not in log and "Traceback" not in log


# ---- "text me a link" ---------------------------------------------------------------------


def test_text_me_a_link_sends_the_phone_url_twice_then_429(
    hs: HandoffStack, vapi: VonageApi
) -> None:
    to = magic("24")
    body = start(vapi, to, top={"locale": "de-de"})
    rid, url = body["request_id"], body["handoff_url"]
    phone_url = phone_url_of(url)
    for n in (1, 2):
        resp = requests.post(leaf(url, "sms"), timeout=10)
        assert resp.status_code == 202, resp.text
        assert resp.json() == {"request_id": rid, "sent": n, "remaining": 2 - n}
    third = requests.post(leaf(url, "sms"), timeout=10)
    assert third.status_code == 429
    assert third.headers["Content-Type"].startswith("application/problem+json")

    def links() -> list[dict[str, Any]] | None:
        found = [m for m in vapi.messages(to) if str(m["id"]).startswith(f"{rid}:handoff:")]
        return found if len(found) == 2 else None

    sent = wait_until(links, what="two handoff links in the outbox")
    assert sorted(m["id"] for m in sent) == [f"{rid}:handoff:1", f"{rid}:handoff:2"]
    expected = texts.sms_text("de-de", "ACME", phone_url)
    for m in sent:
        assert m["channel"] == "sms" and m["to"] == to
        assert m["text"] == expected and phone_url in m["text"]
    # the link is a working phone page
    assert hs.get(phone_url).status_code == 200


def test_no_link_once_silent_auth_is_over(hs: HandoffStack, vapi: VonageApi) -> None:
    body = start(vapi, magic("26"))
    assert vapi.cancel(body["request_id"]).status_code == 204
    resp = requests.post(leaf(body["handoff_url"], "sms"), timeout=10)
    assert resp.status_code == 409, resp.text

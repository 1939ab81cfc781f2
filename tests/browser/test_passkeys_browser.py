"""The hosted passkeys demo in a real browser: Debian's headless Chromium, driven by Playwright,
with a CDP virtual authenticator (CTAP2, internal, resident keys, user verification).

WebAuthn needs a secure context and a domain as relying-party ID: the page is served over plain
HTTP on `localhost` (a secure context) by a second `serve` of the session stack (same Redis,
sandbox on), and the service's relying party is `localhost` with that origin. The outcome is then
read back through the Twilio API of the HTTPS stack.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from tests.support.processes import CLI, Stack, free_port, wait_until

pytestmark = needs_chromium


@contextlib.contextmanager
def plain_http_serve(stack: Stack, **env: str) -> Iterator[int]:
    """One more `serve` of the session stack (same Redis), over plain HTTP; yields its port."""
    port = free_port()
    with (stack.workdir / f"web-http-{port}.log").open("ab") as log:
        proc = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**stack.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def healthy() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, timeout=20, what="the plain-HTTP serve")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def demo_url(stack: Stack) -> Iterator[str]:
    """The sandbox stack as a browser on this machine reaches it: http://localhost:<port>."""
    with plain_http_serve(stack) as port:
        yield f"http://localhost:{port}"


def _api(stack: Stack, auth: tuple[str, str], method: str, path: str, **kw: Any) -> Any:
    resp = requests.request(
        method, f"{stack.url}{path}", auth=auth, verify=str(stack.cert), timeout=10, **kw
    )
    assert resp.status_code < 300, resp.text
    return resp.json()


def test_register_then_sign_in_through_the_demo_page(stack: Stack, demo_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    account = stack.cli("accounts", "create", "--name", "browser")
    assert isinstance(account, dict)
    auth = (str(account["account_sid"]), str(account["auth_token"]))
    service = _api(
        stack,
        auth,
        "POST",
        "/v2/Services",
        data={
            "FriendlyName": "Passkeys demo",
            "Passkeys.RelyingParty.Id": "localhost",
            "Passkeys.RelyingParty.Name": "Demo",
            "Passkeys.RelyingParty.Origins": demo_url,
            "Passkeys.AuthenticatorAttachment": "platform",
            "Passkeys.DiscoverableCredentials": "required",
            "Passkeys.UserVerification": "required",
        },
    )
    service_sid = service["sid"]
    identity = "browser-" + uuid.uuid4().hex[:12]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(15_000)
            cdp = context.new_cdp_session(page)
            cdp.send("WebAuthn.enable", {"enableUI": False})
            authenticator = cdp.send(
                "WebAuthn.addVirtualAuthenticator",
                {
                    "options": {
                        "protocol": "ctap2",
                        "transport": "internal",
                        "hasResidentKey": True,
                        "hasUserVerification": True,
                        "isUserVerified": True,
                        "automaticPresenceSimulation": True,
                    }
                },
            )
            page.goto(f"{demo_url}/passkeys/demo?service={service_sid}&identity={identity}")
            expect(page.locator("#service")).to_have_value(service_sid)
            assert page.evaluate("window.isSecureContext") is True

            page.click("#register")
            expect(page.locator("#factor-status")).to_have_text("verified")
            factor_sid = page.locator("#factor-sid").inner_text()

            page.click("#authenticate")
            expect(page.locator("#challenge-status")).to_have_text("approved")
            challenge_sid = page.locator("#challenge-sid").inner_text()

            # no identity at all: the resident credential says who it is
            page.click("#authenticate-discoverable")
            expect(page.locator("#message")).to_have_text(
                f"Signed in as {identity}: challenge approved"
            )
            discoverable_sid = page.locator("#challenge-sid").inner_text()
            assert discoverable_sid != challenge_sid

            credentials = cdp.send(
                "WebAuthn.getCredentials", {"authenticatorId": authenticator["authenticatorId"]}
            )["credentials"]
            assert len(credentials) == 1
            assert credentials[0]["isResidentCredential"] is True
            assert credentials[0]["rpId"] == "localhost"
            assert credentials[0]["signCount"] >= 2
        finally:
            browser.close()

    # what the browser did, read back through the Twilio API
    base = f"/v2/Services/{service_sid}/Entities/{identity}"
    factor = _api(stack, auth, "GET", f"{base}/Factors/{factor_sid}")
    assert factor["status"] == "verified" and factor["factor_type"] == "passkeys"
    assert factor["config"]["relying_party"] == {
        "id": "localhost",
        "name": "Demo",
        "origins": [demo_url],
    }
    for sid in (challenge_sid, discoverable_sid):
        challenge = _api(stack, auth, "GET", f"{base}/Challenges/{sid}")
        assert challenge["status"] == "approved"
        assert challenge["factor_sid"] == factor_sid
        assert challenge["factor_type"] == "passkeys"


def test_the_demo_is_same_origin_and_sandbox_only(stack: Stack, demo_url: str) -> None:
    """No browser needed: the demo API refuses cross-site calls and needs a real service."""
    api = f"{demo_url.replace('localhost', '127.0.0.1')}/passkeys/demo/api/challenges"
    cross_site = requests.post(
        api,
        json={"service": "VA" + "0" * 32, "body": {}},
        headers={"Origin": "https://evil.test"},
        timeout=10,
    )
    assert cross_site.status_code == 403
    form_post = requests.post(api, data={"service": "VA" + "0" * 32}, timeout=10)
    assert form_post.status_code == 403
    unknown = requests.post(api, json={"service": "VA" + "0" * 32, "body": {}}, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["code"] == 20404
    page = requests.get(f"{demo_url.replace('localhost', '127.0.0.1')}/passkeys/demo", timeout=10)
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]

    with plain_http_serve(stack, VERIFY_SANDBOX="false") as port:
        for method, path in [("GET", "/passkeys/demo"), ("POST", "/passkeys/demo/api/factors")]:
            resp = requests.request(method, f"http://127.0.0.1:{port}{path}", json={}, timeout=10)
            assert resp.status_code == 404, path

"""The desktop handoff in a real browser: Debian's headless Chromium through Playwright, with two
browser contexts, a desktop and a phone.

The phone context presents the device IP the sandbox operator maps to the number (the
X-Sandbox-Device-IP header on every request it makes, as a handset on mobile data would be seen
by the operator). The desktop page is opened from an opener page (postMessage resumption) or
navigates to the step's redirect_url; both "third-party" origins are served by Playwright route
handlers. Screenshots go to the test's tmp dir and to /tmp/handoff-shots/.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.handoff import texts
from tests.integration.test_handoff import (
    HANDSET_IP,
    HANDSET_NUMBER,
    HandoffStack,
    handoff_stack,
    magic,
    phone_url_of,
    start,
)
from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from tests.support.client import VonageApi, create_app
from tests.support.processes import wait_until

SHOTS = Path("/tmp/handoff-shots")  # noqa: S108 - where the lead looks at them
APP_ORIGIN = "https://app.example"

pytestmark = needs_chromium


_OPENER = """<!doctype html><html lang="en"><head><title>Shop</title></head><body>
<h1>Shop checkout</h1><p id="got">nothing yet</p>
<script>
window.received = [];
window.addEventListener("message", function (e) {
  window.received.push({origin: e.origin, data: e.data});
  document.getElementById("got").textContent = JSON.stringify(e.data);
});
</script></body></html>"""


@pytest.fixture(scope="module")
def hs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HandoffStack]:
    with handoff_stack(tmp_path_factory.mktemp("handoff-browser")) as s:
        yield s


@pytest.fixture
def vapi(hs: HandoffStack, tmp_path: Path) -> VonageApi:
    # no webhooks: these tests read the outcome from the pages and the API
    app = create_app(hs.stack, "handoff-browser", "", tmp_path, f"/hooks/{uuid.uuid4().hex}")
    return VonageApi(hs.url, app, verify="", auth="basic")


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def _accessibility_smoke(page: Any) -> None:
    """Every button has an accessible name, the status region is live, images are named,
    the document has a language and one h1, and keyboard focus is visible."""
    report = page.evaluate(
        """() => {
      const name = (el) => (el.getAttribute("aria-label") || el.textContent || "").trim();
      return {
        lang: document.documentElement.lang,
        h1: document.querySelectorAll("h1").length,
        unnamedButtons: [...document.querySelectorAll("button,[role=button]")]
          .filter((b) => !name(b)).length,
        unnamedImages: [...document.querySelectorAll("svg,img,[role=img]")]
          .filter((i) => !(i.getAttribute("aria-label") || i.getAttribute("alt")
                           || (i.querySelector("title") || {}).textContent)).length,
        live: [...document.querySelectorAll("[aria-live]")].map((e) => e.id),
        unlabelledInputs: [...document.querySelectorAll("input:not([type=hidden])")]
          .filter((i) => !i.labels.length && !i.getAttribute("aria-label")).length,
      };
    }"""
    )
    assert report["lang"] and report["h1"] == 1, report
    assert report["unnamedButtons"] == 0 and report["unnamedImages"] == 0, report
    assert report["unlabelledInputs"] == 0, report
    if page.locator("#sms").count():
        assert "status" in report["live"], report
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => [document.activeElement.id, document.activeElement.matches(':focus-visible'),"
            " getComputedStyle(document.activeElement).outlineStyle]"
        )
        assert focused[0] == "sms" and focused[1] is True and focused[2] != "none", focused


def _browser(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )


def _phone_context(browser: Any, playwright: Any) -> Any:
    pixel = dict(playwright.devices["Pixel 5"])
    pixel.pop("default_browser_type", None)
    return browser.new_context(**pixel, extra_http_headers={"X-Sandbox-Device-IP": HANDSET_IP})


def test_desktop_hands_off_to_phone_and_resumes_by_post_message(
    hs: HandoffStack, vapi: VonageApi, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    body = start(vapi, HANDSET_NUMBER)
    rid = body["request_id"]
    handoff_url = f"{body['handoff_url']}&origin={APP_ORIGIN}"
    t = texts.for_locale("en-gb")

    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            desktop = browser.new_context(viewport={"width": 1100, "height": 900})
            desktop.route(
                f"{APP_ORIGIN}/**",
                lambda route: route.fulfill(body=_OPENER, content_type="text/html"),
            )
            opener = desktop.new_page()
            opener.set_default_timeout(15_000)
            opener.goto(f"{APP_ORIGIN}/checkout")
            with opener.expect_popup() as popup_info:
                opener.evaluate("(url) => { window.open(url, 'handoff'); }", handoff_url)
            page = popup_info.value
            page.set_default_timeout(15_000)
            page.wait_for_load_state()
            expect(page.locator("h1")).to_have_text(t["title"])
            expect(page.get_by_role("img", name=t["qr_label"])).to_be_visible()
            expect(page.locator("#status")).to_have_text(t["waiting"])
            _accessibility_smoke(page)
            _shot(page, tmp_path, "desktop-before")

            # "text me a link": the SMS carries the phone page's URL
            page.get_by_role("button", name=t["sms_button"]).click()
            expect(page.locator("#sms-note")).to_have_text(t["sms_sent"])

            def link() -> str | None:
                for m in vapi.messages(HANDSET_NUMBER):
                    if m["id"] == f"{rid}:handoff:1":
                        found = re.search(r"https?://\S+", m["text"])
                        return found.group(0) if found else None
                return None

            phone_url = wait_until(link, what="the texted handoff link")
            assert phone_url == phone_url_of(body["handoff_url"])

            phone = _phone_context(browser, playwright)
            handset = phone.new_page()
            handset.set_default_timeout(15_000)
            handset.goto(phone_url)
            button = handset.get_by_role("button", name=t["phone_button"])
            expect(button).to_be_visible()
            _accessibility_smoke(handset)
            _shot(handset, tmp_path, "phone-before")
            button.click()
            handset.wait_for_url(re.compile(rf"/v2/verify/{rid}/handoff/done\?"))
            expect(handset.locator("#status")).to_have_text(t["verified"])
            expect(handset.locator("#back")).to_have_text(t["back"])
            _shot(handset, tmp_path, "phone-after")

            # the desktop updated live and handed the result to its opener
            expect(page.locator("#status")).to_have_text(t["verified"])
            expect(page.locator("body")).to_have_attribute("data-state", "verified")
            assert page.locator("#sms").is_disabled()
            _shot(page, tmp_path, "desktop-after")
            wait_until(lambda: opener.evaluate("window.received.length") > 0, what="postMessage")
            received = opener.evaluate("window.received")
            assert len(received) == 1
            message = received[0]
            assert message["origin"] == hs.url
            assert message["data"]["type"] == "verify-handoff"
            assert message["data"]["request_id"] == rid
            assert message["data"]["status"] == "verified"
            code = message["data"]["code"]
            assert code not in handset.content()  # the phone never sees the code
        finally:
            browser.close()

    checked = vapi.check(rid, code)
    assert checked.status_code == 200, checked.text
    assert checked.json() == {"request_id": rid, "status": "completed"}


def test_desktop_resumes_at_redirect_url(hs: HandoffStack, vapi: VonageApi, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    body = start(vapi, magic("32"), redirect_url=f"{APP_ORIGIN}/landing", top={"locale": "fr-fr"})
    rid = body["request_id"]
    t = texts.for_locale("fr-fr")
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            desktop = browser.new_context()
            landed: list[str] = []

            def landing(route: Any) -> None:
                landed.append(route.request.url)
                route.fulfill(body="<h1>Welcome back</h1>", content_type="text/html")

            desktop.route(f"{APP_ORIGIN}/**", landing)
            page = desktop.new_page()
            page.set_default_timeout(15_000)
            page.goto(body["handoff_url"])
            assert page.evaluate("document.documentElement.lang") == "fr-FR"
            expect(page.locator("#status")).to_have_text(t["waiting"])
            _shot(page, tmp_path, "desktop-redirect-before")

            handset = _phone_context(browser, playwright).new_page()
            handset.set_default_timeout(15_000)
            handset.goto(phone_url_of(body["handoff_url"]))
            handset.get_by_role("button", name=t["phone_button"]).click()
            expect(handset.locator("#status")).to_have_text(t["verified"])

            page.wait_for_url(re.compile(rf"^{re.escape(APP_ORIGIN)}/landing#"))
            fragment = page.evaluate("location.hash")
            _shot(page, tmp_path, "desktop-redirect-after")
        finally:
            browser.close()
    found = re.fullmatch(rf"#request_id={rid}&code=([A-Za-z0-9]+)", fragment)
    assert found, fragment
    assert landed and landed[0].startswith(f"{APP_ORIGIN}/landing")
    assert vapi.check(rid, found.group(1)).status_code == 200


def test_desktop_shows_the_fallback_when_the_phone_fails(
    hs: HandoffStack, vapi: VonageApi, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    body = start(vapi, magic("99"))
    t = texts.for_locale("en-us")
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(15_000)
            page.goto(body["handoff_url"])
            handset = _phone_context(browser, playwright).new_page()
            handset.set_default_timeout(15_000)
            handset.goto(phone_url_of(body["handoff_url"]))
            handset.get_by_role("button", name=t["phone_button"]).click()
            expect(handset.locator("#status")).to_contain_text(t["fallback"])
            _shot(handset, tmp_path, "phone-failed")
            expect(page.locator("#status")).to_have_text(f"{t['failed']} {t['fallback']}")
            expect(page.locator("body")).to_have_attribute("data-state", "fallback")
            _shot(page, tmp_path, "desktop-failed")
        finally:
            browser.close()

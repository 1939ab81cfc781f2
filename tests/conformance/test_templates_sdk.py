"""The official `twilio` SDK, unmodified but for its base URL, on `GET /v2/Templates`: listing,
paging by the absolute next_page_url, the FriendlyName filter, the SMS going out with the
TemplateSid's text. (vonage-verify 2.2.0 has no template methods: its `Verify` class offers
start/check/cancel/next only, so the Vonage Templates API is covered by
tests/integration/test_templates_api.py.)"""

from __future__ import annotations

import random
from typing import Any

from twilio.rest.verify.v2.template import TemplateInstance

from tests.support.processes import Stack, wait_until
from tests.support.twilio import new_tenant


def _template(stack: Stack, account: str, name: str, locale: str, text: str) -> str:
    made = stack.cli(
        "templates", "create", "--account", account, "--name", name,
        "--channel", "sms", "--locale", locale, "--text", text,
    )  # fmt: skip
    assert isinstance(made, dict)
    return str(made["sid"])


def test_the_sdk_pages_through_an_accounts_templates(stack: Stack) -> None:
    tenant = new_tenant(stack, "tpl-sdk", "Shop")
    sids = [
        _template(stack, tenant.account_sid, f"t{i}", "en", f"{{{{code}}}} is code {i}")
        for i in range(3)
    ]
    _template(stack, tenant.account_sid, "t0", "de", "{{code}} ist Ihr Code")

    listed = tenant.client.verify.v2.templates.list(page_size=1)
    assert [t.sid for t in listed] == sids
    assert all(isinstance(t, TemplateInstance) for t in listed)
    first = listed[0]
    assert first.friendly_name == "t0" and first.channels == ["sms"]
    assert first.translations is not None
    assert set(first.translations) == {"en", "de"}
    assert first.translations["en"]["is_default_translation"] is True
    assert first.translations["de"]["text"] == "{{code}} ist Ihr Code"

    (only,) = tenant.client.verify.v2.templates.list(friendly_name="t2", page_size=1)
    assert only.sid == sids[2]
    raw = tenant.request("GET", "/v2/Templates", params={"FriendlyName": "t1", "PageSize": 1})
    assert raw.json()["meta"]["url"].endswith("&FriendlyName=t1")
    assert list(tenant.client.verify.v2.templates.stream(limit=2)) != []


def test_template_sid_sets_the_text_the_sms_carries(stack: Stack) -> None:
    tenant = new_tenant(stack, "tpl-sdk-2", "Shop")
    sid = _template(stack, tenant.account_sid, "login", "en", "{{friendly_name}} code {{code}}")
    to = "1202555" + f"{random.randrange(10**4):04d}"
    created = tenant.service.verifications.create(to="+" + to, channel="sms", template_sid=sid)
    assert created.status == "pending"

    def sent() -> dict[str, Any] | None:
        found = [m for m in tenant.outbox(to) if m["channel"] == "sms"]
        return found[0] if found else None

    message = wait_until(sent, what="the templated sms")
    assert message["text"] == f"Shop code {message['code']}"
    check = tenant.service.verification_checks.create(to="+" + to, code=message["code"])
    assert check.status == "approved"

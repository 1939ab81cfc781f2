"""Templates APIs on the real stack: Vonage's templates and fragments (CRUD, HAL pages, 409s,
422s), a start's template_id reaching the sandbox outbox, and Twilio's TemplateSid rendering
templates made with `verify-orchestrator templates create`, listed by the official SDK."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
import requests
from twilio.base.exceptions import TwilioException

from orchestrator.templates import schema
from tests.support.client import TestApp, VonageApi
from tests.support.processes import Stack, wait_until
from tests.support.twilio import new_tenant, sdk_client

PROBLEM = "application/problem+json"
BASE = "/v2/verify/templates"


def _problem(resp: requests.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith(PROBLEM), resp.headers
    body: dict[str, Any] = resp.json()
    for key in ("type", "title", "detail", "instance"):
        assert isinstance(body.get(key), str) and body[key], body
    return body


def _create(api: VonageApi, name: str) -> dict[str, Any]:
    resp = api.request("POST", BASE, json={"name": name})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _fragment(api: VonageApi, tid: str, channel: str, locale: str, text: str) -> requests.Response:
    body = {"channel": channel, "locale": locale, "text": text}
    return api.request("POST", f"{BASE}/{tid}/template_fragments", json=body)


@pytest.fixture
def own_api(stack: Stack, make_app: Callable[..., TestApp]) -> VonageApi:
    """An application of its own account: templates are per account, ten at most."""
    return VonageApi(stack.url, make_app(), verify=str(stack.cert))


def test_template_crud_and_default(own_api: VonageApi) -> None:
    api = own_api
    first = _create(api, "login")
    assert first["is_default"] is True and first["name"] == "login"
    schema.Template.model_validate(first)
    tid = first["template_id"]
    assert first["_links"]["self"]["href"].endswith(f"{BASE}/{tid}")
    assert first["_links"]["fragments"]["href"].endswith(f"{BASE}/{tid}/template_fragments")
    second = _create(api, "signup")
    assert second["is_default"] is False

    got = api.request("GET", f"{BASE}/{tid}")
    assert got.status_code == 200 and got.json() == first

    patched = api.request("PATCH", f"{BASE}/{second['template_id']}", json={"is_default": True})
    assert patched.status_code == 200 and patched.json()["is_default"] is True
    assert api.request("GET", f"{BASE}/{tid}").json()["is_default"] is False
    renamed = api.request("PATCH", f"{BASE}/{tid}", json={"name": "login-2"})
    assert renamed.json()["name"] == "login-2"

    _problem(api.request("POST", BASE, json={"name": "signup"}), 409)
    _problem(api.request("PATCH", f"{BASE}/{tid}", json={"name": "signup"}), 409)
    bad = _problem(api.request("POST", BASE, json={"name": "no spaces"}), 422)
    assert bad["invalid_parameters"][0]["name"] == "name"
    _problem(api.request("GET", f"{BASE}/00000000-0000-4000-8000-000000000000"), 404)
    _problem(api.request("GET", f"{BASE}/not-a-uuid"), 404)

    assert api.request("DELETE", f"{BASE}/{tid}").status_code == 204
    _problem(api.request("GET", f"{BASE}/{tid}"), 404)


def test_listing_pages_and_the_ten_template_limit(own_api: VonageApi) -> None:
    api = own_api
    for i in range(10):
        _create(api, f"t{i}")
    problem = _problem(api.request("POST", BASE, json={"name": "eleven"}), 409)
    assert problem["type"].endswith("#max-templates")

    page = api.request("GET", BASE, params={"page_size": 4, "page": 2})
    assert page.status_code == 200, page.text
    body = page.json()
    schema.TemplatePage.model_validate(body)
    assert (body["page_size"], body["page"], body["total_pages"], body["total_items"]) == (
        4,
        2,
        3,
        10,
    )
    assert [t["name"] for t in body["_embedded"]["templates"]] == ["t4", "t5", "t6", "t7"]
    links = body["_links"]
    assert links["next"]["href"].endswith("page_size=4&page=3")
    assert links["prev"]["href"].endswith("page_size=4&page=1")
    assert links["last"]["href"].endswith("page_size=4&page=3")
    bad = _problem(api.request("GET", BASE, params={"page_size": "0"}), 422)
    assert bad["invalid_parameters"][0]["name"] == "page_size"


def test_fragments_crud_conflicts_and_text_rules(own_api: VonageApi) -> None:
    api = own_api
    tid = _create(api, "login")["template_id"]
    created = _fragment(api, tid, "sms", "en-GB", "${brand}: ${code} is your code")
    assert created.status_code == 201, created.text
    frag = created.json()
    schema.TemplateFragment.model_validate(frag)
    assert frag["locale"] == "en-gb" and frag["channel"] == "sms"
    assert frag["_links"]["template"]["href"].endswith(f"{BASE}/{tid}")
    fid = frag["template_fragment_id"]
    again = _problem(_fragment(api, tid, "sms", "en-gb", "${code}"), 409)
    assert again["type"].endswith("#fragment-exists")
    assert _fragment(api, tid, "voice", "en-gb", "Your code is ${code}").status_code == 201

    missing = _problem(_fragment(api, tid, "sms", "de-de", "Ihr Code"), 422)
    assert missing["invalid_parameters"][0]["name"] == "text"
    assert "${code}" in missing["invalid_parameters"][0]["reason"]
    typo = _problem(_fragment(api, tid, "sms", "de-de", "${code} von ${brnad}"), 422)
    assert "${brnad}" in typo["invalid_parameters"][0]["reason"]
    too_long = _problem(_fragment(api, tid, "sms", "de-de", "${code} " + "x" * 150), 422)
    assert "segment" in too_long["invalid_parameters"][0]["reason"]
    bad_channel = _problem(_fragment(api, tid, "whatsapp", "de-de", "${code}"), 422)
    assert bad_channel["invalid_parameters"][0]["name"] == "channel"

    listed = api.request("GET", f"{BASE}/{tid}/template_fragments", params={"page_size": 1})
    body = listed.json()
    schema.FragmentPage.model_validate(body)
    assert body["total_items"] == 2 and body["total_pages"] == 2
    assert [f["channel"] for f in body["_embedded"]["template_fragments"]] == ["sms"]

    url = f"{BASE}/{tid}/template_fragments/{fid}"
    assert api.request("GET", url).json()["text"] == "${brand}: ${code} is your code"
    patched = api.request("PATCH", url, json={"text": "${code} - ${brand}"})
    assert patched.status_code == 200 and patched.json()["text"] == "${code} - ${brand}"
    _problem(api.request("PATCH", url, json={"text": "no code"}), 422)

    not_empty = _problem(api.request("DELETE", f"{BASE}/{tid}"), 409)
    assert not_empty["type"].endswith("#not-empty-template")
    listing = api.request("GET", f"{BASE}/{tid}/template_fragments").json()
    for f in listing["_embedded"]["template_fragments"]:
        path = "/v2" + f["_links"]["self"]["href"].split("/v2", 1)[1]
        assert api.request("DELETE", path).status_code == 204
    _problem(api.request("GET", url), 404)
    assert api.request("DELETE", f"{BASE}/{tid}").status_code == 204


def test_templates_need_credentials_and_stay_in_their_account(
    stack: Stack, own_api: VonageApi, make_app: Callable[..., TestApp]
) -> None:
    tid = _create(own_api, "mine")["template_id"]
    anonymous = requests.get(stack.url + BASE, verify=str(stack.cert), timeout=10)
    _problem(anonymous, 401)
    other = VonageApi(stack.url, make_app(), verify=str(stack.cert))
    _problem(other.request("GET", f"{BASE}/{tid}"), 404)
    assert other.request("GET", BASE).json()["total_items"] == 0


def test_a_start_with_template_id_sends_the_fragment_text(own_api: VonageApi, number: str) -> None:
    api = own_api
    tid = _create(api, "login")["template_id"]
    # this one is the default: a start without template_id takes it
    other = _create(api, "other")["template_id"]
    api.request("PATCH", f"{BASE}/{other}", json={"is_default": True})
    assert _fragment(api, tid, "sms", "en-gb", "${brand} login: ${code}").status_code == 201
    assert _fragment(api, other, "sms", "en-gb", "Default ${code}").status_code == 201

    body = {"brand": "ACME", "template_id": tid, "workflow": [{"channel": "sms", "to": number}]}
    resp = api.start(body)
    assert resp.status_code == 202, resp.text
    rid = resp.json()["request_id"]
    message = api.wait_message(number, rid, "sms")
    assert message["text"] == f"ACME login: {message['code']}"
    assert api.check(rid, message["code"]).status_code == 200

    resp = api.start({"brand": "ACME", "workflow": [{"channel": "sms", "to": number}]})
    assert resp.status_code == 202, resp.text
    rid = resp.json()["request_id"]
    message = api.wait_message(number, rid, "sms")
    assert message["text"] == f"Default {message['code']}"
    assert api.check(rid, message["code"]).status_code == 200

    unknown = {**body, "template_id": "00000000-0000-4000-8000-000000000000"}
    problem = _problem(api.start(unknown), 422)
    assert problem["invalid_parameters"][0]["name"] == "template_id"


def _us_number() -> str:
    return "1202555" + f"{random.randrange(10**4):04d}"


def test_twilio_template_sid_renders_and_the_sdk_lists_templates(stack: Stack) -> None:
    tenant = new_tenant(stack, "templates", "Shop")
    created = stack.cli(
        "templates", "create", "--account", tenant.account_sid, "--name", "shop-login",
        "--channel", "sms", "--locale", "en",
        "--text", "{{friendly_name}}: {{code}} for ${app}. Valid {{ttl}} min.",
        "--variable", "app",
    )  # fmt: skip
    assert isinstance(created, dict)
    sid = str(created["sid"])
    assert sid.startswith("HJ") and len(sid) == 34

    listed = tenant.client.verify.v2.templates.list()
    assert [t.sid for t in listed] == [sid]
    (template,) = listed
    assert template.friendly_name == "shop-login" and template.channels == ["sms"]
    assert template.account_sid == tenant.account_sid
    assert template.translations is not None
    assert template.translations["en"]["text"] == (
        "{{friendly_name}}: {{code}} for {{app}}. Valid {{ttl}} min."
    )
    assert tenant.client.verify.v2.templates.list(friendly_name="nope") == []
    raw = tenant.request("GET", "/v2/Templates", params={"FriendlyName": "shop-login"})
    assert raw.status_code == 200, raw.text
    assert schema.TwilioTemplatePage.model_validate(raw.json()).templates[0].sid == sid

    to = _us_number()
    tenant.service.verifications.create(
        to="+" + to,
        channel="sms",
        template_sid=sid,
        template_custom_substitutions='{"app": "Checkout"}',
    )

    def sent() -> dict[str, Any] | None:
        found = [m for m in tenant.outbox(to) if m["channel"] == "sms"]
        return found[0] if found else None

    message = wait_until(sent, what="the templated sms")
    assert message["text"] == f"Shop: {message['code']} for Checkout. Valid 10 min."

    missing = tenant.request(
        "POST",
        f"/v2/Services/{tenant.service_sid}/Verifications",
        data={"To": "+" + _us_number(), "Channel": "sms", "TemplateSid": sid},
    )
    assert missing.status_code == 400, missing.text
    assert missing.json()["code"] == 60200
    unknown = tenant.request(
        "POST",
        f"/v2/Services/{tenant.service_sid}/Verifications",
        data={"To": "+" + _us_number(), "Channel": "sms", "TemplateSid": "HJ" + "0" * 32},
    )
    assert unknown.status_code == 400 and "TemplateSid" in unknown.json()["message"]

    # another account sees none of them
    other = new_tenant(stack, "templates-2", "Other")
    assert other.client.verify.v2.templates.list() == []
    bad = sdk_client(stack, tenant.account_sid, "wrong-token")
    with pytest.raises(TwilioException) as exc:
        bad.verify.v2.templates.list()
    # a listing's page fetch reports the answer's status and Twilio-shaped body
    assert "HTTP 401" in str(exc.value) and "20003" in str(exc.value)

"""The Vonage Verify v2 dialect end to end, through real processes: HTTP in, outbox and webhooks out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import time
import uuid
from typing import Any

import requests

from tests.support.client import TestApp, VonageApi
from tests.support.processes import Stack, never, wait_until
from tests.support.receiver import Delivery, WebhookReceiver

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PROBLEM = "application/problem+json"


def uk_number() -> str:
    return "4477009" + f"{random.randrange(10**5):05d}"


def sms_body(to: str, **extra: Any) -> dict[str, Any]:
    return {"brand": "ACME", "workflow": [{"channel": "sms", "to": to}], **extra}


def started(resp: requests.Response) -> str:
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert set(body) == {"request_id"}, body
    return str(body["request_id"])


def assert_problem(resp: requests.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith(PROBLEM), resp.headers
    body: dict[str, Any] = resp.json()
    for key in ("type", "title", "detail", "instance"):
        assert isinstance(body.get(key), str) and body[key], body
    return body


def events(receiver: WebhookReceiver, rid: str) -> list[dict[str, Any]]:
    return [d.json for d in receiver.for_request(rid) if d.json.get("type") == "event"]


def wait_event(
    receiver: WebhookReceiver, rid: str, channel: str, status: str, timeout: float = 10
) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for e in events(receiver, rid):
            if e["channel"] == channel and e["status"] == status:
                return e
        return None

    found: dict[str, Any] = wait_until(find, timeout=timeout, what=f"{channel} {status} event")
    return found


def workflow_statuses(summary: Delivery) -> list[tuple[str, str]]:
    return [(s["channel"], s["status"]) for s in summary.json["workflow"]]


# ---- the happy path ----------------------------------------------------------------------------


def test_sms_code_completes_and_reports_event_and_summary(
    api: VonageApi, receiver: WebhookReceiver, number: str
) -> None:
    body = {
        "brand": "ACME",
        "client_ref": "order42",
        "channel_timeout": 120,
        "workflow": [{"channel": "sms", "to": number}, {"channel": "voice", "to": number}],
    }
    rid = started(api.start(body))
    message = api.wait_message(number, rid, "sms")
    assert message["to"] == number
    assert message["from"] == "ACME"
    assert re.fullmatch(r"\d{4}", message["code"]), message
    assert message["code"] in message["text"]

    checked = api.check(rid, message["code"])
    assert checked.status_code == 200, checked.text
    assert checked.json() == {"request_id": rid, "status": "completed"}

    again = api.check(rid, message["code"])
    problem = assert_problem(again, 404)
    assert rid in problem["detail"]

    event = wait_event(receiver, rid, "sms", "completed")
    assert event["type"] == "event"
    assert event["request_id"] == rid
    assert event["client_ref"] == "order42"
    assert ISO_MS.match(event["triggered_at"]) and ISO_MS.match(event["finalized_at"]), event

    summary = receiver.wait_summary(rid).json
    assert summary["status"] == "completed"
    assert summary["channel_timeout"] == 120
    assert summary["client_ref"] == "order42"
    assert ISO_MS.match(summary["submitted_at"])
    assert [(s["channel"], s["status"]) for s in summary["workflow"]] == [
        ("sms", "completed"),
        ("voice", "unused"),
    ]
    assert ISO_MS.match(summary["workflow"][0]["initiated_at"])
    # the voice step was never reached: nothing was sent on it
    assert [m["channel"] for m in api.messages(number) if m["request_id"] == rid] == ["sms"]


def test_three_wrong_codes_fail_the_request(
    api: VonageApi, receiver: WebhookReceiver, number: str
) -> None:
    rid = started(api.start(sms_body(number)))
    code = api.wait_message(number, rid, "sms")["code"]
    wrong = "0000" if code != "0000" else "1111"

    first = assert_problem(api.check(rid, wrong), 400)
    assert first["title"] == "Invalid Code"
    assert_problem(api.check(rid, wrong), 400)
    third = assert_problem(api.check(rid, wrong), 410)
    assert "too many times" in third["detail"]

    assert receiver.wait_summary(rid).json["status"] == "failed"
    assert wait_event(receiver, rid, "sms", "failed")["request_id"] == rid
    # the request is over: even the right code finds nothing
    assert_problem(api.check(rid, code), 404)


def test_email_channel(api: VonageApi, receiver: WebhookReceiver) -> None:
    address = f"user{uuid.uuid4().hex[:8]}@example.com"
    body = {
        "brand": "ACME",
        "workflow": [{"channel": "email", "to": address, "from": "noreply@acme.example"}],
    }
    rid = started(api.start(body))
    message = api.wait_message(address, rid, "email")
    assert message["to"] == address
    assert message["from"] == "noreply@acme.example"
    assert message["subject"] == "Your ACME verification code"
    assert message["code"] in message["text"]

    checked = api.check(rid, message["code"])
    assert checked.status_code == 200, checked.text
    assert workflow_statuses(receiver.wait_summary(rid)) == [("email", "completed")]


# ---- workflows ---------------------------------------------------------------------------------


def test_next_workflow_walks_three_channels(
    api: VonageApi, receiver: WebhookReceiver, number: str
) -> None:
    body = {
        "brand": "ACME",
        "workflow": [
            {"channel": "sms", "to": number},
            {"channel": "whatsapp", "to": number, "from": "447700900999"},
            {"channel": "voice", "to": number},
        ],
    }
    rid = started(api.start(body))
    api.wait_message(number, rid, "sms")

    moved = api.next_workflow(rid)
    assert moved.status_code == 200, moved.text
    whatsapp = api.wait_message(number, rid, "whatsapp")
    assert whatsapp["from"] == "447700900999"
    assert whatsapp["code"] in whatsapp["text"]
    assert wait_event(receiver, rid, "sms", "expired")["finalized_at"]

    moved = api.next_workflow(rid)
    assert moved.status_code == 200, moved.text
    voice = api.wait_message(number, rid, "voice")
    spoken = ", ".join(voice["code"])
    assert spoken in voice["text"], voice["text"]
    assert voice["code"] not in voice["text"]  # digits are read one by one, never as a number

    last = assert_problem(api.next_workflow(rid), 409)
    assert last["detail"] == "There are no more events left to trigger."

    checked = api.check(rid, voice["code"])
    assert checked.status_code == 200, checked.text
    summary = receiver.wait_summary(rid)
    assert summary.json["status"] == "completed"
    assert workflow_statuses(summary) == [
        ("sms", "expired"),
        ("whatsapp", "expired"),
        ("voice", "completed"),
    ]
    assert all(ISO_MS.match(s["initiated_at"]) for s in summary.json["workflow"])
    wait_event(receiver, rid, "whatsapp", "expired")
    wait_event(receiver, rid, "voice", "completed")
    in_order = sorted(events(receiver, rid), key=lambda e: e["triggered_at"])
    assert [(e["channel"], e["status"]) for e in in_order] == [
        ("sms", "expired"),
        ("whatsapp", "expired"),
        ("voice", "completed"),
    ]


def test_reuse_code_sends_the_same_code_on_the_next_channel(api: VonageApi, number: str) -> None:
    body = {
        "brand": "ACME",
        "code_length": 6,
        "workflow": [
            {"channel": "sms", "to": number},
            {"channel": "voice", "to": number, "reuse_code": True},
        ],
    }
    rid = started(api.start(body))
    sms = api.wait_message(number, rid, "sms")
    assert len(sms["code"]) == 6
    assert api.next_workflow(rid).status_code == 200
    voice = api.wait_message(number, rid, "voice")
    assert voice["code"] == sms["code"]
    assert ", ".join(sms["code"]) in voice["text"]
    checked = api.check(rid, sms["code"])
    assert checked.status_code == 200, checked.text


def test_custom_code_is_sent_and_accepted(api: VonageApi, number: str) -> None:
    rid = started(api.start(sms_body(number, code="ABC123", code_length=6)))
    message = api.wait_message(number, rid, "sms")
    assert message["code"] == "ABC123"
    assert "ABC123" in message["text"]
    checked = api.check(rid, "ABC123")
    assert checked.status_code == 200, checked.text
    assert checked.json() == {"request_id": rid, "status": "completed"}


def test_cancel(api: VonageApi, receiver: WebhookReceiver, number: str) -> None:
    body = {
        "brand": "ACME",
        "workflow": [{"channel": "sms", "to": number}, {"channel": "voice", "to": number}],
    }
    rid = started(api.start(body))
    code = api.wait_message(number, rid, "sms")["code"]

    cancelled = api.cancel(rid)
    assert cancelled.status_code == 204, cancelled.text
    assert cancelled.content == b""
    assert_problem(api.check(rid, code), 404)
    assert_problem(api.next_workflow(rid), 404)
    assert_problem(api.cancel(rid), 404)
    # the cancelled request released its number
    again = started(api.start(sms_body(number)))
    api.wait_message(number, again, "sms")
    # nothing more goes out for the cancelled one (its step timeout is checked in the slow test)
    assert [m["channel"] for m in api.messages(number) if m["request_id"] == rid] == ["sms"]


def test_concurrent_start_to_same_number_conflicts(api: VonageApi, number: str) -> None:
    first = started(api.start(sms_body(number)))
    conflict = assert_problem(api.start(sms_body(number)), 409)
    assert conflict["request_id"] == first
    assert conflict["detail"] == "Concurrent verifications to the same number are not allowed."

    code = api.wait_message(number, first, "sms")["code"]
    assert api.check(first, code).status_code == 200
    second = started(api.start(sms_body(number)))
    assert second != first


def test_channel_timeout_moves_on_by_itself(
    api: VonageApi, receiver: WebhookReceiver, number: str
) -> None:
    # SLOW: the one test that waits a real channel_timeout (15 s, the minimum).
    other = uk_number()
    body = {
        "brand": "ACME",
        "channel_timeout": 15,
        "workflow": [{"channel": "sms", "to": number}, {"channel": "voice", "to": number}],
    }
    # a twin request, cancelled at once: its step timeout must never fire
    twin = started(
        api.start(
            {
                **body,
                "workflow": [{"channel": "sms", "to": other}, {"channel": "voice", "to": other}],
            }
        )
    )
    rid = started(api.start(body))
    api.wait_message(other, twin, "sms")
    assert api.cancel(twin).status_code == 204
    api.wait_message(number, rid, "sms")
    began = time.monotonic()

    voice = api.wait_message(number, rid, "voice", timeout=30)
    assert time.monotonic() - began > 10  # it waited for the timeout, nobody pushed it
    assert ", ".join(voice["code"]) in voice["text"]
    expired = wait_event(receiver, rid, "sms", "expired")
    assert ISO_MS.match(expired["finalized_at"])

    assert api.check(rid, voice["code"]).status_code == 200
    summary = receiver.wait_summary(rid)
    assert workflow_statuses(summary) == [("sms", "expired"), ("voice", "completed")]
    assert summary.json["channel_timeout"] == 15
    # the cancelled twin's timeout was due at the same moment, and sent nothing
    assert [m["channel"] for m in api.messages(other) if m["request_id"] == twin] == ["sms"]


# ---- auth and webhooks -------------------------------------------------------------------------


def test_basic_auth_start_sends_no_webhooks(
    stack: Stack, app: TestApp, api: VonageApi, receiver: WebhookReceiver, number: str
) -> None:
    basic = VonageApi(stack.url, app, verify=str(stack.cert), auth="basic")
    quiet = started(basic.start(sms_body(number)))
    code = basic.wait_message(number, quiet, "sms")["code"]
    checked = basic.check(quiet, code)
    assert checked.status_code == 200, checked.text

    # control: the same app, started with a JWT, does get its webhooks
    other = uk_number()
    loud = started(api.start(sms_body(other)))
    assert api.check(loud, api.wait_message(other, loud, "sms")["code"]).status_code == 200
    receiver.wait_summary(loud)
    never(lambda: receiver.for_request(quiet), 1.0, "webhook for a Basic-auth request")


def test_locale_follows_the_number_or_the_request(api: VonageApi, number: str) -> None:
    uk = started(api.start(sms_body(number)))
    text = api.wait_message(number, uk, "sms")["text"]
    assert "Please don't share it with anyone." in text, text
    assert api.messages(number)[0]["locale"] == "en-gb"

    spanish = "34612345678"
    es = started(api.start(sms_body(spanish)))
    message = api.wait_message(spanish, es, "sms")
    assert message["locale"] == "es-es"
    assert f"tu código de verificación es {message['code']}" in message["text"]

    german_to = uk_number()
    de = started(api.start(sms_body(german_to, locale="de-de")))
    message = api.wait_message(german_to, de, "sms")
    assert message["locale"] == "de-de"
    assert f"Ihr Bestätigungscode lautet {message['code']}" in message["text"]

    bad = assert_problem(api.start(sms_body(uk_number(), locale="xx-yy")), 422)
    assert [p["name"] for p in bad["invalid_parameters"]] == ["locale"]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forge(alg: str, claims: dict[str, Any], key: bytes | None) -> str:
    head = _b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    signing_input = f"{head}.{_b64url(json.dumps(claims).encode())}"
    sig = b"" if key is None else hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(sig)}"


def test_refused_credentials(stack: Stack, app: TestApp, api: VonageApi, number: str) -> None:
    def start_with(authorization: str) -> requests.Response:
        return requests.post(
            stack.url + "/v2/verify",
            json=sms_body(uk_number()),
            headers={"Authorization": authorization},
            verify=str(stack.cert),
            timeout=10,
        )

    token = app.token()
    assert start_with(f"Bearer {token}").status_code == 202
    replay = assert_problem(start_with(f"Bearer {token}"), 401)
    assert replay["title"] == "Unauthorized"

    now = int(time.time())
    expired = assert_problem(start_with(f"Bearer {app.token(iat=now - 900, exp=now - 120)}"), 401)
    assert "expired" in expired["detail"].lower()
    assert expired["type"].endswith("#jwt-expired")

    claims = {"application_id": app.application_id, "iat": now, "jti": str(uuid.uuid4())}
    assert_problem(start_with(f"Bearer {_forge('none', claims, None)}"), 401)
    public_pem = _public_pem(app)
    hs256 = _forge("HS256", {**claims, "jti": str(uuid.uuid4())}, public_pem)
    assert_problem(start_with(f"Bearer {hs256}"), 401)

    stranger = app.token(application_id=str(uuid.uuid4()))
    assert_problem(start_with(f"Bearer {stranger}"), 401)

    wrong_secret = base64.b64encode(f"{app.api_key}:not-the-secret".encode()).decode()
    assert_problem(start_with(f"Basic {wrong_secret}"), 401)
    assert_problem(start_with(""), 401)
    # the refused attempts left no request behind: the number is still free
    assert api.start(sms_body(number)).status_code == 202


def _public_pem(app: TestApp) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(app.private_key.encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_health_and_openapi(stack: Stack) -> None:
    health = requests.get(stack.url + "/health", verify=str(stack.cert), timeout=10)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    doc = requests.get(stack.url + "/openapi.json", verify=str(stack.cert), timeout=10)
    assert doc.status_code == 200
    paths = set(doc.json()["paths"])
    vonage = {p for p in paths if p.startswith("/v2/verify")}
    assert vonage == {
        "/v2/verify",
        "/v2/verify/{request_id}",
        "/v2/verify/{request_id}/next_workflow",
        "/v2/verify/{request_id}/silent-auth/redirect",
        # Verify v2 Templates and their fragments
        "/v2/verify/templates",
        "/v2/verify/templates/{template_id}",
        "/v2/verify/templates/{template_id}/template_fragments",
        "/v2/verify/templates/{template_id}/template_fragments/{template_fragment_id}",
    }
    # the Twilio dialect is described in the same document
    assert {"/v2/Services", "/v2/Services/{ServiceSid}/VerificationCheck"} <= paths

"""Conformance: the official Vonage Python SDK (vonage 4.x + vonage-verify 2.x), unmodified
except for its base URL, drives every Verify v2 flow against the real stack.

What a customer migrating from Vonage relies on, and what each test pins:
- the SDK's response models parse our 2xx bodies (StartVerificationResponse, CheckCodeResponse);
- our errors map onto the SDK's exception classes (404 NotFoundError, 401 AuthenticationError,
  everything else HttpRequestError carrying the `requests.Response`);
- the silent-auth check_url behaves like Vonage's (redirect chain, 200 {request_id, code}, or 412);
- webhooks for JWT-started requests verify with the SDK's own `vonage_jwt.verify_signature`,
  carry a `payload_hash` of the exact body, and also verify as Standard Webhooks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from vonage import Auth, Vonage
from vonage_http_client import AuthenticationError, HttpRequestError, NotFoundError
from vonage_jwt import verify_signature
from vonage_verify import (
    CheckCodeResponse,
    EmailChannel,
    Locale,
    SilentAuthChannel,
    SmsChannel,
    StartVerificationResponse,
    Verify,
    VerifyRequest,
    VoiceChannel,
    WhatsappChannel,
    WhatsappMode,
)

from tests.support.client import TestApp, VonageApi
from tests.support.processes import Stack, wait_until
from tests.support.receiver import Delivery, WebhookReceiver

# ---- helpers ------------------------------------------------------------------------------------

Expected = tuple[str, str | None, str]  # (type, channel or None for the summary, status)


def _b64url_json(segment: str) -> dict[str, Any]:
    padded = segment + "=" * (-len(segment) % 4)
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return decoded


def assert_signed(d: Delivery, app: TestApp) -> None:
    """Both signatures a Verify Orchestrator webhook carries, checked with the official tools."""
    scheme, _, token = d.headers["authorization"].partition(" ")
    assert scheme == "Bearer", d.headers["authorization"]
    assert verify_signature(token, app.signature_secret) is True
    assert verify_signature(token, "not-the-signature-secret-" + "x" * 40) is False
    header_b64, payload_b64, _sig = token.split(".")
    assert _b64url_json(header_b64) == {"alg": "HS256", "typ": "JWT"}
    claims = _b64url_json(payload_b64)
    assert claims["payload_hash"] == hashlib.sha256(d.body).hexdigest()
    assert claims["iss"] == "Vonage"
    assert claims["api_key"] == app.api_key
    assert claims["application_id"] == app.application_id
    assert isinstance(claims["iat"], int)
    uuid.UUID(claims["jti"])
    # Standard Webhooks over the same bytes; it returns the parsed body when the HMAC matches
    hook = Webhook(app.webhook_secret)
    assert hook.verify(d.body, d.headers) == d.json
    with pytest.raises(WebhookVerificationError):
        hook.verify(d.body + b" ", d.headers)


def _key(body: dict[str, Any]) -> Expected:
    channel = None if body["type"] == "summary" else body["channel"]
    return (body["type"], channel, body["status"])


def wait_hooks(
    receiver: WebhookReceiver, app: TestApp, request_id: str, expected: list[Expected]
) -> dict[Expected, Delivery]:
    """Wait until every expected callback for `request_id` reached this app's status URL."""

    def found() -> dict[Expected, Delivery] | None:
        seen = {_key(d.json): d for d in receiver.for_request(request_id, app.hook_path)}
        return seen if all(e in seen for e in expected) else None

    seen: dict[Expected, Delivery] = wait_until(
        found, timeout=15, what=f"webhooks {expected} for {request_id}"
    )
    deliveries = receiver.for_request(request_id, app.hook_path)
    for d in deliveries:
        assert_signed(d, app)
    # delivery is at least once, but on a healthy receiver each message goes out once
    ids = [d.headers["webhook-id"] for d in deliveries]
    assert len(ids) == len(set(ids)), ids
    return seen


def _timestamp(value: Any) -> datetime:
    assert isinstance(value, str) and value.endswith("Z"), value
    return datetime.fromisoformat(value)


def assert_event(d: Delivery, request_id: str, channel: str, status: str) -> dict[str, Any]:
    body: dict[str, Any] = d.json
    assert body["request_id"] == request_id
    assert body["type"] == "event"
    assert body["channel"] == channel
    assert body["status"] == status
    _timestamp(body["triggered_at"])
    if status == "action_pending":
        assert "finalized_at" not in body
    else:
        _timestamp(body["finalized_at"])
    return body


def assert_summary(
    d: Delivery,
    request_id: str,
    status: str,
    workflow: list[tuple[str, str]],
    channel_timeout: int,
    client_ref: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = d.json
    required = {"request_id", "submitted_at", "status", "type", "channel_timeout", "workflow"}
    assert required <= body.keys(), body
    assert body["request_id"] == request_id
    assert body["type"] == "summary"
    assert body["status"] == status
    assert body["channel_timeout"] == channel_timeout
    submitted = _timestamp(body["submitted_at"])
    assert [(s["channel"], s["status"]) for s in body["workflow"]] == workflow
    for step in body["workflow"]:
        if step["status"] == "unused":
            assert "initiated_at" not in step, step
        else:
            assert _timestamp(step["initiated_at"]) >= submitted
    if client_ref is None:
        assert "client_ref" not in body
    else:
        assert body["client_ref"] == client_ref
    return body


def http_error(exc_info: pytest.ExceptionInfo[HttpRequestError], status: int) -> dict[str, Any]:
    """The problem+json body of an SDK HTTP error, after checking its status."""
    response = exc_info.value.response
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert {"type", "title", "detail", "instance"} <= body.keys(), body
    assert str(status) in str(exc_info.value)  # the SDK's message names the status
    return body


def unique_email() -> str:
    return f"sdk-{uuid.uuid4().hex[:12]}@example.com"


# ---- start -> outbox -> check ---------------------------------------------------------------


def test_sms_start_then_check_code_completes(
    verify: Verify, api: VonageApi, receiver: WebhookReceiver, app: TestApp, number: str
) -> None:
    started = verify.start_verification(
        VerifyRequest(
            brand="ACME",
            workflow=[SmsChannel(to=number)],
            channel_timeout=120,
            client_ref="order42",
            code_length=6,
        )
    )
    assert isinstance(started, StartVerificationResponse)
    assert started.check_url is None
    rid = started.request_id
    assert str(uuid.UUID(rid)) == rid

    message = api.wait_message(number, rid, "sms")
    assert len(message["code"]) == 6 and message["code"] in message["text"]
    assert message["from"] == "ACME"

    checked = verify.check_code(rid, message["code"])
    assert isinstance(checked, CheckCodeResponse)
    assert checked == CheckCodeResponse(request_id=rid, status="completed")

    # a finished request is gone for the API: Vonage answers 404 and so do we
    with pytest.raises(NotFoundError) as again:
        verify.check_code(rid, message["code"])
    http_error(again, 404)

    hooks = wait_hooks(
        receiver, app, rid, [("event", "sms", "completed"), ("summary", None, "completed")]
    )
    assert_event(hooks[("event", "sms", "completed")], rid, "sms", "completed")
    assert hooks[("event", "sms", "completed")].json["client_ref"] == "order42"
    assert_summary(
        hooks[("summary", None, "completed")],
        rid,
        "completed",
        [("sms", "completed")],
        channel_timeout=120,
        client_ref="order42",
    )


def test_email_start_then_check_code_completes(
    verify: Verify, api: VonageApi, receiver: WebhookReceiver, app: TestApp
) -> None:
    to = unique_email()
    started = verify.start_verification(
        VerifyRequest(brand="ACME", workflow=[EmailChannel(to=to, from_="security@acme.example")])
    )
    rid = started.request_id
    assert started.check_url is None

    message = api.wait_message(to, rid, "email")
    assert message["to"] == to
    assert message["from"] == "security@acme.example"
    assert message["code"] in message["text"]

    assert verify.check_code(rid, message["code"]) == CheckCodeResponse(
        request_id=rid, status="completed"
    )
    hooks = wait_hooks(
        receiver, app, rid, [("event", "email", "completed"), ("summary", None, "completed")]
    )
    assert_event(hooks[("event", "email", "completed")], rid, "email", "completed")
    # no channel_timeout given: the spec default of 180 s applies and is reported
    assert_summary(
        hooks[("summary", None, "completed")], rid, "completed", [("email", "completed")], 180
    )


def test_whatsapp_start_then_check_code_completes(
    verify: Verify, api: VonageApi, receiver: WebhookReceiver, app: TestApp, number: str
) -> None:
    # SDK quirk: its `type(v) is not PhoneNumber` check never matches (PhoneNumber is an
    # Annotated alias), so `from_` must fit 3-11 alphanumerics: a 12-digit UK sender is refused
    # client-side. An 11-digit US sender passes.
    channel = WhatsappChannel(to=number, from_="15555550100", mode=WhatsappMode.OTP_CODE)
    rid = verify.start_verification(VerifyRequest(brand="ACME", workflow=[channel])).request_id
    message = api.wait_message(number, rid, "whatsapp")
    assert message["from"] == "15555550100"
    assert verify.check_code(rid, message["code"]).status == "completed"
    hooks = wait_hooks(receiver, app, rid, [("summary", None, "completed")])
    assert_summary(
        hooks[("summary", None, "completed")], rid, "completed", [("whatsapp", "completed")], 180
    )


def test_every_optional_sms_field_the_sdk_sends_is_accepted(
    verify: Verify, api: VonageApi, number: str
) -> None:
    channel = SmsChannel(
        to=number,
        from_="ACMEAlerts",
        app_hash="FA+9qCX9VSu",
        entity_id="1101456324675322134",
        content_id="1107457532145798767",
    )
    rid = verify.start_verification(
        VerifyRequest(brand="ACME", workflow=[channel], code="Ab12Cd")
    ).request_id
    message = api.wait_message(number, rid, "sms")
    assert message["from"] == "ACMEAlerts"
    assert message["code"] == "Ab12Cd"  # a custom code, as the SDK allows
    assert message["text"].endswith("\nFA+9qCX9VSu")  # Android SMS Retriever's last line
    assert verify.check_code(rid, "Ab12Cd").status == "completed"


# ---- silent auth --------------------------------------------------------------------------------


def test_silent_auth_rejected_falls_back_to_sms(
    verify: Verify,
    api: VonageApi,
    receiver: WebhookReceiver,
    app: TestApp,
    stack: Stack,
    sa_odd: str,
) -> None:
    started = verify.start_verification(
        VerifyRequest(brand="ACME", workflow=[SilentAuthChannel(to=sa_odd), SmsChannel(to=sa_odd)])
    )
    rid = started.request_id
    assert started.check_url == f"{stack.url}/v2/verify/{rid}/silent-auth/redirect"

    # the silent-auth step has no code of its own yet: Vonage answers 409 no-code
    with pytest.raises(HttpRequestError) as codeless:
        verify.check_code(rid, "1234")
    assert type(codeless.value) is HttpRequestError
    assert http_error(codeless, 409)["title"] == "Conflict"

    # the "handset" opens check_url; the virtual operator says the user rejected it
    device = requests.get(started.check_url, timeout=10)
    assert device.status_code == 412, device.text
    assert device.history, "check_url should hop through the operator before answering"
    assert all(hop.status_code == 302 for hop in device.history)
    problem = device.json()
    assert problem["title"] == "Silent authentication failed"
    assert problem["detail"]

    message = api.wait_message(sa_odd, rid, "sms")
    assert verify.check_code(rid, message["code"]) == CheckCodeResponse(
        request_id=rid, status="completed"
    )

    hooks = wait_hooks(
        receiver,
        app,
        rid,
        [
            ("event", "silent_auth", "action_pending"),
            ("event", "silent_auth", "user_rejected"),
            ("event", "sms", "completed"),
            ("summary", None, "completed"),
        ],
    )
    pending = assert_event(
        hooks[("event", "silent_auth", "action_pending")], rid, "silent_auth", "action_pending"
    )
    assert pending["action"] == {"type": "check", "check_url": started.check_url}
    rejected = assert_event(
        hooks[("event", "silent_auth", "user_rejected")], rid, "silent_auth", "user_rejected"
    )
    assert "action" not in rejected
    assert_event(hooks[("event", "sms", "completed")], rid, "sms", "completed")
    assert_summary(
        hooks[("summary", None, "completed")],
        rid,
        "completed",
        [("silent_auth", "user_rejected"), ("sms", "completed")],
        180,
    )


def test_silent_auth_happy_path_code_checks_with_sdk(
    verify: Verify, receiver: WebhookReceiver, app: TestApp, sa_even: str
) -> None:
    started = verify.start_verification(
        VerifyRequest(
            brand="ACME", workflow=[SilentAuthChannel(to=sa_even), SmsChannel(to=sa_even)]
        )
    )
    rid = started.request_id
    assert started.check_url

    device = requests.get(started.check_url, timeout=10)
    assert device.status_code == 200, device.text
    assert device.history and all(hop.status_code == 302 for hop in device.history)
    result = device.json()
    assert set(result) == {"request_id", "code"}
    # the backend must bind the device's answer to the request it started
    assert result["request_id"] == rid

    assert verify.check_code(rid, result["code"]) == CheckCodeResponse(
        request_id=rid, status="completed"
    )
    # the request is over, so its check_url is gone too
    assert requests.get(started.check_url, timeout=10).status_code == 404

    hooks = wait_hooks(
        receiver,
        app,
        rid,
        [
            ("event", "silent_auth", "action_pending"),
            ("event", "silent_auth", "completed"),
            ("summary", None, "completed"),
        ],
    )
    assert_event(hooks[("event", "silent_auth", "completed")], rid, "silent_auth", "completed")
    assert_summary(
        hooks[("summary", None, "completed")],
        rid,
        "completed",
        [("silent_auth", "completed"), ("sms", "unused")],
        180,
    )


def test_silent_auth_redirect_url_carries_the_code_in_the_fragment(
    verify: Verify, sa_even: str
) -> None:
    final = "https://acme.example/sa/done"
    started = verify.start_verification(
        VerifyRequest(brand="ACME", workflow=[SilentAuthChannel(to=sa_even, redirect_url=final)])
    )
    rid = started.request_id
    assert started.check_url
    url, hops = started.check_url, 0
    # walk the chain by hand: the last hop leaves this service for the app's own page
    while not url.startswith(final):
        hop = requests.get(url, allow_redirects=False, timeout=10)
        assert hop.status_code == 302, hop.text
        url = urljoin(url, hop.headers["Location"])
        hops += 1
        assert hops < 10, "redirect loop"
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == final
    fragment = {k: v[0] for k, v in parse_qs(parts.fragment).items()}
    assert fragment["request_id"] == rid
    assert verify.check_code(rid, fragment["code"]).status == "completed"


def test_silent_auth_code_allows_one_check_then_falls_back(
    verify: Verify, api: VonageApi, receiver: WebhookReceiver, app: TestApp, sa_even: str
) -> None:
    rid = verify.start_verification(
        VerifyRequest(
            brand="ACME", workflow=[SilentAuthChannel(to=sa_even), SmsChannel(to=sa_even)]
        )
    ).request_id
    check_url = f"{api.base}/v2/verify/{rid}/silent-auth/redirect"
    result = requests.get(check_url, timeout=10).json()
    assert result["request_id"] == rid

    with pytest.raises(HttpRequestError) as wrong:
        verify.check_code(rid, result["code"][::-1] + "x")
    assert http_error(wrong, 400)["title"] == "Invalid Code"
    # the one attempt is spent: the device code is dead and the sms step takes over
    message = api.wait_message(sa_even, rid, "sms")
    with pytest.raises(HttpRequestError) as spent:
        verify.check_code(rid, result["code"])
    http_error(spent, 400)
    assert verify.check_code(rid, message["code"]).status == "completed"

    hooks = wait_hooks(
        receiver, app, rid, [("event", "silent_auth", "failed"), ("summary", None, "completed")]
    )
    assert_summary(
        hooks[("summary", None, "completed")],
        rid,
        "completed",
        [("silent_auth", "failed"), ("sms", "completed")],
        180,
    )


def test_check_url_is_single_use(verify: Verify, sa_even: str) -> None:
    started = verify.start_verification(
        VerifyRequest(brand="ACME", workflow=[SilentAuthChannel(to=sa_even)])
    )
    assert started.check_url
    first = requests.get(started.check_url, allow_redirects=False, timeout=10)
    assert first.status_code == 302
    second = requests.get(started.check_url, timeout=10)
    assert second.status_code == 409, second.text
    assert second.json()["title"] == "Conflict"
    verify.cancel_verification(started.request_id)


def test_next_workflow_from_silent_auth_starts_sms(
    verify: Verify, api: VonageApi, sa_even: str
) -> None:
    rid = verify.start_verification(
        VerifyRequest(
            brand="ACME", workflow=[SilentAuthChannel(to=sa_even), SmsChannel(to=sa_even)]
        )
    ).request_id
    verify.trigger_next_workflow(rid)
    message = api.wait_message(sa_even, rid, "sms")
    assert verify.check_code(rid, message["code"]).status == "completed"


def test_silent_auth_uncovered_network_is_refused_at_start(verify: Verify) -> None:
    # a French mobile number: outside the sandbox operator's covered prefixes
    to = "336" + f"{random.randrange(10**8):08d}"
    with pytest.raises(HttpRequestError) as refused:
        verify.start_verification(VerifyRequest(brand="ACME", workflow=[SilentAuthChannel(to=to)]))
    assert http_error(refused, 412)["title"] == "Network not supported"


# ---- next_workflow, cancel, wrong codes -----------------------------------------------------


def test_next_workflow_moves_sms_to_voice_then_409(
    verify: Verify, api: VonageApi, receiver: WebhookReceiver, app: TestApp, number: str
) -> None:
    started = verify.start_verification(
        VerifyRequest(brand="ACME", workflow=[SmsChannel(to=number), VoiceChannel(to=number)])
    )
    rid = started.request_id
    api.wait_message(number, rid, "sms")

    assert verify.trigger_next_workflow(rid) is None  # 200 with no body -> None
    voice = api.wait_message(number, rid, "voice")
    assert voice["code"]

    # the last step is current: nothing left to trigger
    with pytest.raises(HttpRequestError) as last:
        verify.trigger_next_workflow(rid)
    assert type(last.value) is HttpRequestError  # 409 has no dedicated SDK class
    problem = http_error(last, 409)
    assert problem["title"] == "Conflict"
    assert problem["detail"] == "There are no more events left to trigger."

    assert verify.check_code(rid, voice["code"]).status == "completed"
    hooks = wait_hooks(
        receiver,
        app,
        rid,
        [
            ("event", "sms", "expired"),
            ("event", "voice", "completed"),
            ("summary", None, "completed"),
        ],
    )
    assert_event(hooks[("event", "sms", "expired")], rid, "sms", "expired")
    assert_summary(
        hooks[("summary", None, "completed")],
        rid,
        "completed",
        [("sms", "expired"), ("voice", "completed")],
        180,
    )


def test_cancel_then_check_is_not_found(verify: Verify, api: VonageApi, number: str) -> None:
    rid = verify.start_verification(
        VerifyRequest(brand="ACME", workflow=[SmsChannel(to=number)])
    ).request_id
    code = api.wait_message(number, rid, "sms")["code"]

    assert verify.cancel_verification(rid) is None  # 204 -> None

    with pytest.raises(NotFoundError) as check:
        verify.check_code(rid, code)
    assert rid in http_error(check, 404)["detail"]
    with pytest.raises(NotFoundError):
        verify.cancel_verification(rid)
    with pytest.raises(NotFoundError):
        verify.trigger_next_workflow(rid)

    # the destination is free again after a cancel
    again = verify.start_verification(VerifyRequest(brand="ACME", workflow=[SmsChannel(to=number)]))
    assert again.request_id != rid
    verify.cancel_verification(again.request_id)


def test_wrong_codes_400_then_410_on_the_third(
    verify: Verify, api: VonageApi, receiver: WebhookReceiver, app: TestApp, number: str
) -> None:
    rid = verify.start_verification(
        VerifyRequest(brand="ACME", workflow=[SmsChannel(to=number)], code_length=6)
    ).request_id
    code = api.wait_message(number, rid, "sms")["code"]
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    for _ in range(2):
        with pytest.raises(HttpRequestError) as bad:
            verify.check_code(rid, wrong)
        assert type(bad.value) is HttpRequestError
        assert http_error(bad, 400)["title"] == "Invalid Code"

    with pytest.raises(HttpRequestError) as gone:
        verify.check_code(rid, wrong)
    assert type(gone.value) is HttpRequestError
    problem = http_error(gone, 410)
    assert problem["detail"] == (
        "An incorrect code has been provided too many times. Workflow terminated."
    )

    # terminated: even the right code no longer finds the request
    with pytest.raises(NotFoundError):
        verify.check_code(rid, code)

    hooks = wait_hooks(
        receiver, app, rid, [("event", "sms", "failed"), ("summary", None, "failed")]
    )
    assert_event(hooks[("event", "sms", "failed")], rid, "sms", "failed")
    assert_summary(hooks[("summary", None, "failed")], rid, "failed", [("sms", "failed")], 180)


# ---- other errors as the SDK surfaces them ------------------------------------------------------


def test_concurrent_start_is_409_with_the_active_request_id(verify: Verify, number: str) -> None:
    first = verify.start_verification(VerifyRequest(brand="ACME", workflow=[SmsChannel(to=number)]))
    with pytest.raises(HttpRequestError) as busy:
        verify.start_verification(VerifyRequest(brand="ACME", workflow=[SmsChannel(to=number)]))
    assert http_error(busy, 409)["request_id"] == first.request_id
    verify.cancel_verification(first.request_id)


def test_server_side_validation_is_422(verify: Verify, number: str) -> None:
    # the SDK lets '/' through in a brand; the API refuses it with invalid_parameters
    with pytest.raises(HttpRequestError) as invalid:
        verify.start_verification(VerifyRequest(brand="AC/ME", workflow=[SmsChannel(to=number)]))
    problem = http_error(invalid, 422)
    assert [p["name"] for p in problem["invalid_parameters"]] == ["brand"]


def test_jwt_signed_with_an_unknown_key_is_401(
    make_sdk: Callable[[Auth], Vonage], app: TestApp, tmp_path: Path, number: str
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path = tmp_path / "stranger.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    stranger = make_sdk(Auth(application_id=app.application_id, private_key=str(key_path)))
    with pytest.raises(AuthenticationError) as denied:
        stranger.verify.start_verification(
            VerifyRequest(brand="ACME", workflow=[SmsChannel(to=number)])
        )
    assert http_error(denied, 401)["title"] == "Unauthorized"


def test_basic_auth_client_runs_the_same_flow(
    make_sdk: Callable[[Auth], Vonage], app: TestApp, api: VonageApi, number: str
) -> None:
    # no application_id: the SDK's Verify switches itself to Basic auth
    client = make_sdk(Auth(api_key=app.api_key, api_secret=app.api_secret))
    rid = client.verify.start_verification(
        VerifyRequest(brand="ACME", workflow=[SmsChannel(to=number)])
    ).request_id
    code = api.wait_message(number, rid, "sms")["code"]
    assert client.verify.check_code(rid, code) == CheckCodeResponse(
        request_id=rid, status="completed"
    )


@pytest.mark.parametrize("locale", list(Locale), ids=lambda loc: loc.value)
def test_every_sdk_locale_is_accepted(
    verify: Verify, api: VonageApi, number: str, locale: Locale
) -> None:
    rid = verify.start_verification(
        VerifyRequest(brand="ACME", workflow=[SmsChannel(to=number)], locale=locale)
    ).request_id
    message = api.wait_message(number, rid, "sms")
    assert message["locale"] == locale.value
    assert message["code"] in message["text"]
    verify.cancel_verification(rid)

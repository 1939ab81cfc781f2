"""Verify Push through the official `twilio` SDK (the backend) and `verify_device` (the phone),
against the real stack (redis-server + HTTPS serve + worker).

- AccessTokens, and device enrolment with one (Basic `token:<access token>`): the factor answers
  with `config.credential_sid`; factor verification by a DER signature over the factor SID;
- challenges with Details.Message / Details.Fields / HiddenDetails / ExpirationDate; the push in
  the sandbox outbox; the `Twilio-Verify-Signature-Fields` header; approve and deny with the
  device-signed JWT and the signed challenge.approved / challenge.denied webhooks;
- rejected, status unchanged: a forged signature, a replayed approval (403 / 60322), an expired
  challenge (403 / 60323; the worker expires it and sends challenge.expired), a key from another
  factor (403 / 60324);
- Notifications (re-send, Ttl 0-300); Silent Device Approval (newest pending first, the
  transaction id in HiddenDetails checked, no push); factor.created/verified/deleted webhooks.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from tests.support.processes import Stack, wait_until
from tests.support.receiver import Delivery, WebhookReceiver
from tests.support.twilio import Tenant, new_tenant
from verify_device import ChallengeExpired, DeviceClient, DeviceError, DeviceKey

SIGNATURE_FIELDS = "sid,factor_sid,details,hidden_details,expiration_date,date_created,date_updated"


@pytest.fixture
def tenant(stack: Stack) -> Tenant:
    return new_tenant(stack, "x", "Acme Push")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


def identity() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def device_for(stack: Stack, tenant: Tenant, who: str) -> DeviceClient:
    return DeviceClient(stack.url, tenant.service_sid, who, cafile=str(stack.cert))


def access_token(tenant: Tenant, who: str, **kw: Any) -> Any:
    return tenant.service.access_tokens.create(identity=who, factor_type="push", **kw)


def enrolled(
    stack: Stack, tenant: Tenant, who: str | None = None, platform: str = "fcm"
) -> DeviceClient:
    """A device with a verified push factor."""
    who = who or identity()
    device = device_for(stack, tenant, who)
    token = access_token(tenant, who).token
    device.enroll(
        token,
        "Pixel 9",
        notification_platform=platform,
        notification_token=None if platform == "none" else secrets.token_hex(32),
    )
    assert device.verify_factor()["status"] == "verified"
    return device


def push_challenge(tenant: Tenant, device: DeviceClient, **kw: Any) -> Any:
    assert device.enrolment is not None
    kw.setdefault("details_message", "Log in to Acme?")
    return tenant.service.entities(device.identity).challenges.create(
        factor_sid=device.enrolment.factor_sid, **kw
    )


def pushes_for(tenant: Tenant, factor_sid: str, challenge_sid: str) -> list[Any]:
    return [
        m
        for m in tenant.outbox(factor_sid)
        if m["channel"] == "push" and m["extra"].get("challenge_sid") == challenge_sid
    ]


def form(delivery: Delivery) -> dict[str, str]:
    return dict(parse_qsl(delivery.body.decode(), keep_blank_values=True, strict_parsing=True))


def wait_event(receiver: WebhookReceiver, event_type: str, sid: str) -> Delivery:
    def find() -> Delivery | None:
        for d in list(receiver.deliveries):
            params = form(d)
            if params["type"] == event_type and sid in params.values():
                return d
        return None

    found: Delivery = wait_until(find, timeout=15, what=f"{event_type} for {sid}")
    return found


def subscribe(tenant: Tenant, receiver: WebhookReceiver, events: list[str]) -> str:
    path = f"/push/{uuid.uuid4().hex[:8]}"
    tenant.service.webhooks.create(
        friendly_name="push", event_types=events, webhook_url=receiver.url(path)
    )
    return path


def assert_signed(delivery: Delivery, url: str, tenant: Tenant) -> dict[str, str]:
    params = form(delivery)
    signature = delivery.headers["x-twilio-signature"]
    assert RequestValidator(tenant.auth_token).validate(url, params, signature) is True
    tampered = {**params, "type": "challenge.approved" if params["type"] != "x" else "y"}
    if tampered != params:
        assert RequestValidator(tenant.auth_token).validate(url, tampered, signature) is False
    assert RequestValidator("0" * 32).validate(url, params, signature) is False
    return params


def refused(call: Any, status: int, code: int) -> None:
    with pytest.raises((TwilioRestException, DeviceError)) as info:
        call()
    assert (info.value.status, info.value.code) == (status, code), info.value


# ---- enrolment ----------------------------------------------------------------------------------


def test_access_token_enrolment_and_factor_verification(
    stack: Stack, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    path = subscribe(tenant, receiver, ["factor.created", "factor.verified", "factor.deleted"])
    who = identity()
    token = access_token(tenant, who, factor_friendly_name="Jane's Pixel", ttl=120)
    assert token.sid.startswith("YK") and len(token.sid) == 34
    assert (token.account_sid, token.service_sid) == (tenant.account_sid, tenant.service_sid)
    assert token.entity_identity == who and token.factor_type == "push"
    assert token.factor_friendly_name == "Jane's Pixel" and token.ttl == 120
    assert isinstance(token.date_created, datetime) and token.token
    assert token.url == f"{stack.url}/v2/Services/{tenant.service_sid}/AccessTokens/{token.sid}"
    assert tenant.service.access_tokens(token.sid).fetch().token == token.token
    refused(
        lambda: tenant.service.access_tokens.create(identity=who, factor_type="totp"), 400, 60200
    )
    refused(
        lambda: tenant.service.access_tokens.create(identity="bad", factor_type="push"), 400, 60306
    )

    # the token opens this identity only
    elsewhere = device_for(stack, tenant, identity())
    refused(lambda: elsewhere.enroll(token.token, "x"), 401, 20003)
    # a key that is not P-256, and an algorithm that is not ES256
    device = device_for(stack, tenant, who)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    p384_spki = p384.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for param, value in [
        ("Binding.PublicKey", base64.b64encode(p384_spki).decode()),
        ("Binding.Alg", "RS256"),
    ]:
        data = {
            "FriendlyName": "x",
            "FactorType": "push",
            "Binding.Alg": "ES256",
            "Binding.PublicKey": device.key.public_key_b64,
            "Config.NotificationPlatform": "none",
            param: value,
        }
        resp = requests.post(
            f"{device.entity_url}/Factors",
            data=data,
            auth=("token", token.token),
            verify=str(stack.cert),
            timeout=10,
        )
        assert (resp.status_code, resp.json()["code"]) == (400, 60200)
        assert resp.json()["message"] == f"Invalid parameter: {param}"

    created = device.enroll(
        token.token, "Jane's Pixel", notification_platform="fcm", notification_token="f" * 64
    )
    factor_sid = created["sid"]
    assert created["status"] == "unverified" and created["factor_type"] == "push"
    assert created["binding"] == {"alg": "ES256", "public_key": device.key.public_key_b64}
    config = created["config"]
    assert config["credential_sid"].startswith("CR") and len(config["credential_sid"]) == 34
    assert config["notification_platform"] == "fcm" and config["notification_token"] == "f" * 64
    # an access token enrols one device
    again = device_for(stack, tenant, who)
    refused(lambda: again.enroll(token.token, "second"), 401, 20003)

    # the backend sees it through the SDK, without the binding
    fetched = tenant.service.entities(who).factors(factor_sid).fetch()
    assert (
        fetched.status == "unverified"
        and fetched.config["credential_sid"] == config["credential_sid"]
    )
    assert fetched.friendly_name == "Jane's Pixel"

    # a signature by another key leaves it unverified; the device's own verifies it
    forged = DeviceKey.generate().factor_payload(factor_sid)
    answer = tenant.service.entities(who).factors(factor_sid).update(auth_payload=forged)
    assert answer.status == "unverified"
    assert device.verify_factor()["status"] == "verified"
    assert device.fetch_factor()["status"] == "verified"

    created_event = assert_signed(
        wait_event(receiver, "factor.created", factor_sid), receiver.url(path), tenant
    )
    assert created_event["factor_type"] == "push" and created_event["entity_identity"] == who
    assert created_event["factor_friendly_name"] == "Jane's Pixel"
    assert_signed(wait_event(receiver, "factor.verified", factor_sid), receiver.url(path), tenant)

    # the device deletes its factor: factor.deleted, and its key opens nothing any more
    device.delete_factor()
    assert_signed(wait_event(receiver, "factor.deleted", factor_sid), receiver.url(path), tenant)
    with pytest.raises(TwilioRestException):
        tenant.service.entities(who).factors(factor_sid).fetch()


def test_device_authentication(stack: Stack, tenant: Tenant) -> None:
    device = enrolled(stack, tenant)
    assert device.enrolment is not None
    other = enrolled(stack, tenant, device.identity)
    assert other.enrolment is not None
    # another device's key under this device's kid
    impostor = DeviceClient(
        stack.url,
        tenant.service_sid,
        device.identity,
        key=other.key,
        enrolment=device.enrolment,
        cafile=str(stack.cert),
    )
    refused(impostor.fetch_factor, 401, 20003)
    # a device sees its own factor, not its sibling's
    resp = device.call("GET", f"{device.entity_url}/Factors/{device.enrolment.factor_sid}")
    assert resp.status == 200
    refused(
        lambda: device.call("GET", f"{device.entity_url}/Factors/{other.enrolment.factor_sid}"),  # type: ignore[union-attr]
        404,
        20404,
    )
    # device tokens are not account credentials
    token = device.key.auth_jwt(device.enrolment.credential_sid, tenant.account_sid)
    resp2 = requests.get(
        f"{stack.url}/v2/Services/{tenant.service_sid}/Entities",
        auth=("token", token),
        verify=str(stack.cert),
        timeout=10,
    )
    assert (resp2.status_code, resp2.json()["code"]) == (401, 20003)


# ---- challenges ---------------------------------------------------------------------------------


def test_push_challenge_approved_with_the_signed_jwt(
    stack: Stack, tenant: Tenant, receiver: WebhookReceiver
) -> None:
    path = subscribe(tenant, receiver, ["challenge.approved", "challenge.denied"])
    device = enrolled(stack, tenant)
    assert device.enrolment is not None
    factor_sid = device.enrolment.factor_sid
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    challenge = push_challenge(
        tenant,
        device,
        details_fields=[
            {"label": "Action", "value": "Sign in"},
            {"label": "IP", "value": "192.0.2.7"},
        ],
        hidden_details={"ip": "192.0.2.7", "transaction_id": "tx-1"},
        expiration_date=expires,
    )
    assert challenge.sid.startswith("YC") and challenge.status == "pending"
    assert challenge.factor_type == "push" and challenge.factor_sid == factor_sid
    assert challenge.details == {
        "message": "Log in to Acme?",
        "fields": [{"label": "Action", "value": "Sign in"}, {"label": "IP", "value": "192.0.2.7"}],
    }
    assert challenge.hidden_details == {"ip": "192.0.2.7", "transaction_id": "tx-1"}
    assert challenge.expiration_date == expires
    assert challenge.date_responded is None and challenge.responded_reason == "none"
    assert challenge.links["notifications"].endswith(f"/Challenges/{challenge.sid}/Notifications")

    # the push lands in the sandbox outbox, addressed to the factor
    [pushed] = wait_until(lambda: pushes_for(tenant, factor_sid, challenge.sid), what="the push")
    assert pushed["channel"] == "push" and pushed["to"] == factor_sid
    assert pushed["text"] == "Log in to Acme?"
    assert pushed["extra"] == {
        "challenge_sid": challenge.sid,
        "factor_sid": factor_sid,
        "message": "Log in to Acme?",
        "type": "verify_push_challenge",
    }

    # the device fetches it: the fields to sign come in the header while it is pending
    served, fields = device.fetch_challenge(challenge.sid)
    assert ",".join(fields) == SIGNATURE_FIELDS
    assert served["status"] == "pending" and served["hidden_details"]["transaction_id"] == "tx-1"
    jwt_token = device.key.approval_jwt(served, fields, "approved")
    answered = device.submit(challenge.sid, jwt_token, metadata={"os": "Android"})
    assert answered["status"] == "approved"

    done = tenant.service.entities(device.identity).challenges(challenge.sid).fetch()
    assert done.status == "approved" and done.metadata == {"os": "Android"}
    assert isinstance(done.date_responded, datetime)
    headers = device.call("GET", f"{device.entity_url}/Challenges/{challenge.sid}").headers
    assert "Twilio-Verify-Signature-Fields" not in headers

    params = assert_signed(
        wait_event(receiver, "challenge.approved", challenge.sid), receiver.url(path), tenant
    )
    assert params["type"] == "challenge.approved"
    assert params["challenge_sid"] == challenge.sid and params["factor_sid"] == factor_sid
    assert params["entity_identity"] == device.identity and params["factor_type"] == "push"
    assert json.loads(params["challenge_details"])["message"] == "Log in to Acme?"
    assert json.loads(params["challenge_hidden_details"]) == {
        "ip": "192.0.2.7",
        "transaction_id": "tx-1",
    }

    # the same approval again: already responded, nothing changes
    refused(lambda: device.submit(challenge.sid, jwt_token), 403, 60322)
    refused(
        lambda: (
            tenant.service.entities(device.identity)
            .challenges(challenge.sid)
            .update(auth_payload=device.key.approval_jwt(served, fields, "denied"))
        ),
        403,
        60322,
    )
    assert tenant.service.entities(device.identity).challenges(challenge.sid).fetch().status == (
        "approved"
    )


def test_push_challenge_denied(stack: Stack, tenant: Tenant, receiver: WebhookReceiver) -> None:
    path = subscribe(tenant, receiver, ["*"])
    device = enrolled(stack, tenant)
    challenge = push_challenge(tenant, device)
    denied = device.deny(challenge.sid)
    assert denied["status"] == "denied"
    assert tenant.service.entities(device.identity).challenges(challenge.sid).fetch().status == (
        "denied"
    )
    params = assert_signed(
        wait_event(receiver, "challenge.denied", challenge.sid), receiver.url(path), tenant
    )
    assert params["challenge_sid"] == challenge.sid
    refused(lambda: device.approve(challenge.sid), 0, 60322)  # refused locally, like the SDKs


def test_forged_and_foreign_signatures_change_nothing(stack: Stack, tenant: Tenant) -> None:
    device = enrolled(stack, tenant)
    sibling = enrolled(stack, tenant, device.identity)
    challenge = push_challenge(tenant, device, hidden_details={"transaction_id": "tx-9"})
    served, fields = device.fetch_challenge(challenge.sid)
    backend = tenant.service.entities(device.identity).challenges(challenge.sid)

    # a forged signature: a key nobody enrolled
    forged = DeviceKey.generate().approval_jwt(served, fields, "approved")
    refused(lambda: device.submit(challenge.sid, forged), 403, 60324)
    # the key of another factor of the same entity, sent by the backend or the device
    foreign = sibling.key.approval_jwt(served, fields, "approved")
    refused(lambda: backend.update(auth_payload=foreign), 403, 60324)
    refused(lambda: device.submit(challenge.sid, foreign), 403, 60324)
    # the sibling device cannot even see the challenge
    refused(lambda: sibling.fetch_challenge(challenge.sid), 404, 20404)
    # the right key over the wrong fields (another transaction), and garbage
    altered = {**served, "hidden_details": {"transaction_id": "tx-10"}}
    refused(
        lambda: device.submit(challenge.sid, device.key.approval_jwt(altered, fields, "approved")),
        403,
        60324,
    )
    refused(lambda: device.submit(challenge.sid, "not-a-jwt"), 403, 60324)
    assert backend.fetch().status == "pending"

    # untouched by all that: the real approval still works
    assert device.approve(challenge.sid)["status"] == "approved"


def test_expired_challenges(stack: Stack, tenant: Tenant, receiver: WebhookReceiver) -> None:
    path = subscribe(tenant, receiver, ["challenge.expired", "challenge.approved"])
    device = enrolled(stack, tenant)
    soon = datetime.now(UTC) + timedelta(seconds=3)
    challenge = push_challenge(tenant, device, expiration_date=soon)
    served, fields = device.fetch_challenge(challenge.sid)
    assert fields and served["status"] == "pending"
    approval = device.key.approval_jwt(served, fields, "approved")

    backend = tenant.service.entities(device.identity).challenges(challenge.sid)
    # the worker's expiry job turns it expired, and sends challenge.expired
    params = assert_signed(
        wait_event(receiver, "challenge.expired", challenge.sid), receiver.url(path), tenant
    )
    assert params["challenge_sid"] == challenge.sid
    assert backend.fetch().status == "expired"

    refused(lambda: device.submit(challenge.sid, approval), 403, 60323)
    with pytest.raises(ChallengeExpired):
        device.approve(challenge.sid)
    refused(
        lambda: (
            tenant.service.entities(device.identity)
            .challenges(challenge.sid)
            .notifications.create()
        ),
        403,
        60323,
    )
    assert backend.fetch().status == "expired"
    assert [
        c.sid for c in tenant.service.entities(device.identity).challenges.list(status="expired")
    ] == [challenge.sid]
    time.sleep(0.3)
    assert not [d for d in list(receiver.deliveries) if form(d)["type"] == "challenge.approved"]


def test_notifications_resend_the_push(stack: Stack, tenant: Tenant) -> None:
    device = enrolled(stack, tenant)
    assert device.enrolment is not None
    factor_sid = device.enrolment.factor_sid
    challenge = push_challenge(tenant, device)
    wait_until(lambda: pushes_for(tenant, factor_sid, challenge.sid), what="the push")
    notifications = tenant.service.entities(device.identity).challenges(challenge.sid).notifications
    sent = notifications.create(ttl=120)
    assert sent.sid.startswith("NT") and len(sent.sid) == 34
    assert sent.challenge_sid == challenge.sid and sent.identity == device.identity
    assert (sent.account_sid, sent.service_sid) == (tenant.account_sid, tenant.service_sid)
    assert sent.entity_sid == challenge.entity_sid
    assert sent.priority == "high" and sent.ttl == 120
    assert isinstance(sent.date_created, datetime)
    both = wait_until(
        lambda: len(found := pushes_for(tenant, factor_sid, challenge.sid)) == 2 and found,
        what="the second push",
    )
    assert {m["id"] for m in both} == {challenge.sid, sent.sid}
    assert next(m for m in both if m["id"] == sent.sid)["ttl"] == 120
    assert notifications.create().ttl == 300
    for ttl in (-1, 301):
        refused(lambda ttl=ttl: notifications.create(ttl=ttl), 400, 60200)
    device.approve(challenge.sid)
    refused(notifications.create, 403, 60322)


def test_silent_device_approval(stack: Stack, tenant: Tenant) -> None:
    # a device that asked for no push notifications: it finds its challenges by listing them
    device = enrolled(stack, tenant, platform="none")
    assert device.enrolment is not None
    made = [
        push_challenge(tenant, device, hidden_details={"transaction_id": f"tx-{n}"})
        for n in range(3)
    ]
    pending = device.list_challenges(status="pending")
    assert [c["sid"] for c in pending] == [c.sid for c in reversed(made)]  # newest first
    assert [c["sid"] for c in device.list_challenges(status="pending", order="asc")] == [
        c.sid for c in made
    ]
    # the app knows the transaction it started; nothing else is approved
    assert device.silent_approve("tx-unknown") is None
    approved = device.silent_approve("tx-1")
    assert approved is not None and approved["sid"] == made[1].sid
    assert approved["status"] == "approved"
    assert [c["sid"] for c in device.list_challenges(status="pending")] == [
        made[2].sid,
        made[0].sid,
    ]
    assert [c["sid"] for c in device.list_challenges(status="approved")] == [made[1].sid]
    # paging keeps the filters
    assert [c["sid"] for c in device.list_challenges(status="pending", page_size=1)] == [
        made[2].sid,
        made[0].sid,
    ]
    # and no push was involved
    time.sleep(0.3)
    assert tenant.outbox(device.enrolment.factor_sid) == []


def test_challenge_parameters(stack: Stack, tenant: Tenant) -> None:
    device = enrolled(stack, tenant)
    assert device.enrolment is not None
    path = f"/v2/Services/{tenant.service_sid}/Entities/{device.identity}/Challenges"

    def post(data: dict[str, Any]) -> requests.Response:
        factor_sid = device.enrolment.factor_sid  # type: ignore[union-attr]
        return tenant.request("POST", path, data={"FactorSid": factor_sid, **data})

    for data, name in [
        ({}, "Details.Message"),
        ({"Details.Message": "x" * 257}, "Details.Message"),
        ({"Details.Message": "m", "Details.Fields": "not json"}, "Details.Fields"),
        (
            {
                "Details.Message": "m",
                "Details.Fields": json.dumps({"label": "x" * 37, "value": "v"}),
            },
            "Details.Fields",
        ),
        (
            {
                "Details.Message": "m",
                "Details.Fields": [json.dumps({"label": "l", "value": "v"})] * 21,
            },
            "Details.Fields",
        ),
        (
            {"Details.Message": "m", "HiddenDetails": json.dumps({"a": {"nested": 1}})},
            "HiddenDetails",
        ),
        ({"Details.Message": "m", "HiddenDetails": json.dumps({"a": "x" * 1100})}, "HiddenDetails"),
        ({"Details.Message": "m", "AuthPayload": "123456"}, "AuthPayload"),
        ({"Details.Message": "m", "ExpirationDate": "tomorrow"}, "ExpirationDate"),
    ]:
        resp = post(data)
        assert resp.status_code == 400, (data, resp.text)
        assert resp.json()["message"] == f"Invalid parameter: {name}", data
    ok = post(
        {"Details.Message": "m", "Details.Fields": json.dumps({"label": "Amount", "value": 5})}
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["details"]["fields"] == [{"label": "Amount", "value": "5"}]
    assert ok.headers["Twilio-Verify-Signature-Fields"] == SIGNATURE_FIELDS

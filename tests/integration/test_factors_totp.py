"""Entities and TOTP factors through the official `twilio` SDK, against the real stack.

- Entities: create/fetch/list/delete, identity rules (400 / 60306), deleting removes factors
  and challenges, and no PII: the stored entity JSON holds only the opaque identity and ids;
- TOTP factors: `binding.secret` and `binding.uri` only on create, config ranges and the
  service's `totp` defaults, secrets sealed at rest, factor verification (a wrong code: 200
  unverified; more than 5: 429 / 60310);
- TOTP challenges: a pyotp code approves, a replayed code (same window) does not, wrong codes
  leave the challenge pending and are counted (more than 5: 429 / 60308);
- factor.created / factor.verified / factor.deleted and challenge.approved webhooks, signed.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pyotp
import pytest
import redis
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from tests.support.processes import Stack, wait_until
from tests.support.receiver import Delivery, WebhookReceiver
from tests.support.twilio import Tenant, new_tenant


def _tenant(stack: Stack, **service_params: Any) -> Tenant:
    return new_tenant(stack, "x", "Acme", **service_params)


@pytest.fixture
def tenant(stack: Stack) -> Tenant:
    return _tenant(stack)


def identity() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def otp(secret: str, at: float, step: int = 30, digits: int = 6) -> str:
    return pyotp.TOTP(secret, digits=digits, interval=step).at(at)


def raw(tenant: Tenant, method: str, path: str, **kw: Any) -> requests.Response:
    return tenant.request(method, f"/v2/Services/{tenant.service_sid}{path}", **kw)


def totp_factor(tenant: Tenant, who: str, **config: Any) -> Any:
    return tenant.service.entities(who).new_factors.create(
        friendly_name="Authenticator", factor_type="totp", **config
    )


def verified_totp(tenant: Tenant, who: str, **config: Any) -> tuple[Any, str, float]:
    """A verified TOTP factor (skew 2 unless told), its secret, and when it was verified."""
    config.setdefault("config_skew", 2)
    factor = totp_factor(tenant, who, **config)
    secret = factor.binding["secret"]
    now = time.time()
    done = tenant.service.entities(who).factors(factor.sid).update(auth_payload=otp(secret, now))
    assert done.status == "verified"
    return factor, secret, now


def form(delivery: Delivery) -> dict[str, str]:
    return dict(parse_qsl(delivery.body.decode(), keep_blank_values=True, strict_parsing=True))


def events(receiver: WebhookReceiver, path: str) -> list[dict[str, str]]:
    return [form(d) for d in list(receiver.deliveries) if d.path == path]


def wait_event(receiver: WebhookReceiver, path: str, event_type: str, sid: str) -> Delivery:
    def find() -> Delivery | None:
        for d in list(receiver.deliveries):
            params = form(d)
            if d.path == path and params["type"] == event_type and sid in params.values():
                return d
        return None

    found: Delivery = wait_until(find, timeout=15, what=f"{event_type} for {sid}")
    return found


def assert_signed(delivery: Delivery, url: str, tenant: Tenant) -> dict[str, str]:
    params = form(delivery)
    signature = delivery.headers["x-twilio-signature"]
    assert RequestValidator(tenant.auth_token).validate(url, params, signature) is True
    assert RequestValidator("0" * 32).validate(url, params, signature) is False
    return params


# ---- entities -----------------------------------------------------------------------------------


def test_entity_crud_and_list(stack: Stack, tenant: Tenant) -> None:
    first, second = identity(), identity()
    created = tenant.service.entities.create(identity=first)
    assert created.sid.startswith("YE") and len(created.sid) == 34
    assert created.identity == first
    assert (created.account_sid, created.service_sid) == (tenant.account_sid, tenant.service_sid)
    assert isinstance(created.date_created, datetime) and isinstance(created.date_updated, datetime)
    url = f"{stack.url}/v2/Services/{tenant.service_sid}/Entities/{first}"
    assert created.url == url
    assert created.links == {
        "factors": f"{url}/Factors",
        "new_factors": f"{url}/Factors",
        "challenges": f"{url}/Challenges",
    }
    assert tenant.service.entities(first).fetch().sid == created.sid
    tenant.service.entities.create(identity=second)
    assert [e.identity for e in tenant.service.entities.list()] == [first, second]
    assert [e.identity for e in tenant.service.entities.list(page_size=1)] == [first, second]

    with pytest.raises(TwilioRestException) as twice:
        tenant.service.entities.create(identity=first)
    assert twice.value.status == 409

    assert tenant.service.entities(second).delete() is True
    with pytest.raises(TwilioRestException) as gone:
        tenant.service.entities(second).fetch()
    assert (gone.value.status, gone.value.code) == (404, 20404)

    other = _tenant(stack)
    with pytest.raises(TwilioRestException) as hidden:
        other.client.verify.v2.services(tenant.service_sid).entities(first).fetch()
    assert hidden.value.status == 404
    with pytest.raises(TwilioRestException) as elsewhere:
        other.service.entities(first).fetch()
    assert elsewhere.value.status == 404


@pytest.mark.parametrize(
    "bad",
    ["short", "x" * 65, "has space 1", "user@example.com", "+447700900123", "ünïcode-user", ""],
)
def test_identity_rules(tenant: Tenant, bad: str) -> None:
    resp = raw(tenant, "POST", "/Entities", data={"Identity": bad})
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == 60306
    assert resp.json()["status"] == 400
    if bad and "/" not in bad:
        with pytest.raises(TwilioRestException) as refused:
            tenant.service.entities(bad).new_factors.create(friendly_name="a", factor_type="totp")
        assert (refused.value.status, refused.value.code) == (400, 60306)


def test_entities_hold_no_pii_and_deletion_removes_everything(
    stack: Stack, tenant: Tenant, db: redis.Redis
) -> None:
    who = "a1b2c3d4-opaque-0001"
    tenant.service.entities.create(identity=who)
    stored = json.loads(db.get(f"vo:entity:{tenant.service_sid}:{who}") or b"{}")
    assert set(stored) == {
        "sid",
        "identity",
        "account_sid",
        "service_sid",
        "date_created",
        "date_updated",
        "version",
    }
    assert stored["identity"] == who

    factor, secret, at = verified_totp(tenant, who)
    approved = tenant.service.entities(who).challenges.create(
        factor_sid=factor.sid, auth_payload=otp(secret, at + 30)
    )
    pending = tenant.service.entities(who).challenges.create(factor_sid=factor.sid)
    assert (approved.status, pending.status) == ("approved", "pending")
    # the TOTP secret is sealed at rest
    stored_factor = db.get(f"vo:factor:{factor.sid}") or b""
    assert secret.encode() not in stored_factor
    assert json.loads(stored_factor)["binding"]["secret"] != secret

    assert tenant.service.entities(who).delete() is True
    for key in (
        f"vo:entity:{tenant.service_sid}:{who}",
        f"vo:factor:{factor.sid}",
        f"vo:challenge:{approved.sid}",
        f"vo:challenge:{pending.sid}",
        f"vo:factors:{tenant.service_sid}:{who}",
        f"vo:challenges:{tenant.service_sid}:{who}",
    ):
        assert db.exists(key) == 0, key
    with pytest.raises(TwilioRestException) as gone:
        tenant.service.entities(who).factors(factor.sid).fetch()
    assert gone.value.status == 404
    with pytest.raises(TwilioRestException) as gone_challenge:
        tenant.service.entities(who).challenges(pending.sid).fetch()
    assert gone_challenge.value.status == 404
    assert who not in [e.identity for e in tenant.service.entities.list()]


# ---- TOTP factors -------------------------------------------------------------------------------


def test_totp_factor_binding_only_on_create(tenant: Tenant) -> None:
    who = identity()
    factor = totp_factor(
        tenant,
        who,
        config_time_step=45,
        config_skew=0,
        config_code_length=8,
        config_alg="sha256",
    )
    assert factor.sid.startswith("YF") and factor.status == "unverified"
    assert factor.factor_type == "totp" and factor.identity == who
    assert factor.config == {"alg": "sha256", "skew": 0, "code_length": 8, "time_step": 45}
    assert set(factor.binding) == {"secret", "uri"}
    secret, uri = factor.binding["secret"], factor.binding["uri"]
    assert uri.startswith("otpauth://totp/Acme:Authenticator?")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert (parsed.secret, parsed.digits, parsed.interval) == (secret, 8, 45)
    assert parsed.issuer == "Acme"
    # the entity came into being with its first factor
    assert tenant.service.entities(who).fetch().sid == factor.entity_sid

    fetched = tenant.service.entities(who).factors(factor.sid).fetch()
    assert fetched.sid == factor.sid and fetched.config == factor.config
    body = raw(tenant, "GET", f"/Entities/{who}/Factors/{factor.sid}").json()
    assert "binding" not in body and "options" not in body
    listed = raw(tenant, "GET", f"/Entities/{who}/Factors").json()
    assert [f["sid"] for f in listed["factors"]] == [factor.sid]
    assert "binding" not in listed["factors"][0]
    assert [f.sid for f in tenant.service.entities(who).factors.list()] == [factor.sid]

    # a given secret is used as is; its code verifies
    given = pyotp.random_base32()
    mine = totp_factor(tenant, who, binding_secret=given)
    assert mine.binding["secret"] == given
    assert mine.config == {"alg": "sha1", "skew": 1, "code_length": 6, "time_step": 30}
    verified = (
        tenant.service.entities(who).factors(mine.sid).update(auth_payload=pyotp.TOTP(given).now())
    )
    assert verified.status == "verified"


def test_service_totp_defaults(stack: Stack) -> None:
    tenant = _tenant(
        stack, totp_issuer="Acme Bank", totp_time_step=20, totp_code_length=7, totp_skew=0
    )
    factor = totp_factor(tenant, identity())
    assert factor.config == {"alg": "sha1", "skew": 0, "code_length": 7, "time_step": 20}
    parsed = pyotp.parse_uri(factor.binding["uri"])
    assert parsed.issuer == "Acme Bank" and parsed.digits == 7  # type: ignore[attr-defined]
    # a factor's own config wins over the service's defaults
    own = totp_factor(tenant, identity(), config_time_step=60)
    assert own.config["time_step"] == 60 and own.config["code_length"] == 7


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("Config.TimeStep", "19"),
        ("Config.TimeStep", "61"),
        ("Config.Skew", "3"),
        ("Config.Skew", "-1"),
        ("Config.CodeLength", "2"),
        ("Config.CodeLength", "9"),
        ("Config.Alg", "md5"),
        ("Binding.Secret", "not base32!"),
        ("FactorType", "sms"),
    ],
)
def test_totp_config_ranges(tenant: Tenant, param: str, value: str) -> None:
    data = {"FriendlyName": "a", "FactorType": "totp", param: value}
    resp = raw(tenant, "POST", f"/Entities/{identity()}/Factors", data=data)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == 60200
    assert resp.json()["message"] == f"Invalid parameter: {param}"


def test_totp_factor_verification_and_attempts(tenant: Tenant) -> None:
    who = identity()
    factor = totp_factor(tenant, who)
    secret = factor.binding["secret"]
    wrong = str((int(otp(secret, time.time())) + 1) % 10**6).zfill(6)
    attempt = tenant.service.entities(who).factors(factor.sid).update(auth_payload=wrong)
    assert attempt.status == "unverified"  # 200, not an error
    ok = (
        tenant.service.entities(who)
        .factors(factor.sid)
        .update(auth_payload=otp(secret, time.time()))
    )
    assert ok.status == "verified"

    other = totp_factor(tenant, who)
    context = tenant.service.entities(who).factors(other.sid)
    for _ in range(5):
        assert context.update(auth_payload="000000" if wrong != "000000" else "111111").status == (
            "unverified"
        )
    with pytest.raises(TwilioRestException) as locked:
        context.update(auth_payload="123456")
    assert (locked.value.status, locked.value.code) == (429, 60310)
    with pytest.raises(TwilioRestException) as still:
        context.update(auth_payload=otp(other.binding["secret"], time.time()))
    assert (still.value.status, still.value.code) == (429, 60310)
    assert context.fetch().status == "unverified"


def test_totp_challenges(tenant: Tenant) -> None:
    who = identity()
    factor, secret, at = verified_totp(tenant, who)
    challenges = tenant.service.entities(who).challenges

    # a fresh code (the next step: the verification used this one) approves on creation
    code = otp(secret, at + 30)
    approved = challenges.create(factor_sid=factor.sid, auth_payload=code)
    assert approved.status == "approved" and approved.factor_type == "totp"
    assert isinstance(approved.date_responded, datetime)
    assert approved.details is None

    # the same code again, same window: a replay, refused; the challenge stays pending
    replayed = challenges.create(factor_sid=factor.sid, auth_payload=code)
    assert replayed.status == "pending"
    again = challenges(replayed.sid).update(auth_payload=code)
    assert again.status == "pending"
    # the code of the verification (an older step) is refused too
    assert challenges(replayed.sid).update(auth_payload=otp(secret, at)).status == "pending"

    # a newer code approves it
    newer = challenges(replayed.sid).update(auth_payload=otp(secret, at + 60))
    assert newer.status == "approved"
    with pytest.raises(TwilioRestException) as answered:
        challenges(replayed.sid).update(auth_payload=otp(secret, at + 60))
    assert (answered.value.status, answered.value.code) == (403, 60322)

    # wrong codes leave a challenge pending and count: the 6th is refused with 429 / 60308
    counted = challenges.create(factor_sid=factor.sid, auth_payload="000000")
    assert counted.status == "pending"
    for _ in range(4):
        assert challenges(counted.sid).update(auth_payload="999999").status == "pending"
    with pytest.raises(TwilioRestException) as limited:
        challenges(counted.sid).update(auth_payload="999999")
    assert (limited.value.status, limited.value.code) == (429, 60308)
    with pytest.raises(TwilioRestException) as limited_right:
        challenges(counted.sid).update(auth_payload=otp(secret, time.time() + 30))
    assert limited_right.value.code == 60308
    assert challenges(counted.sid).fetch().status == "pending"

    # listing: oldest first, or newest first, filtered by status
    listed = [c.sid for c in challenges.list()]
    assert listed == [approved.sid, replayed.sid, counted.sid]
    assert [c.sid for c in challenges.list(order="desc")] == listed[::-1]
    assert [c.sid for c in challenges.list(status="pending")] == [counted.sid]
    assert [c.sid for c in challenges.list(status="approved", order="desc")] == [
        replayed.sid,
        approved.sid,
    ]
    assert [c.sid for c in challenges.list(factor_sid=factor.sid, page_size=1)] == listed
    page = raw(
        tenant, "GET", f"/Entities/{who}/Challenges", params={"Status": "approved", "PageSize": 1}
    ).json()
    assert "Status=approved" in page["meta"]["next_page_url"]


def test_challenge_rules(stack: Stack, tenant: Tenant) -> None:
    who = identity()
    unverified = totp_factor(tenant, who)
    with pytest.raises(TwilioRestException) as refused:
        tenant.service.entities(who).challenges.create(factor_sid=unverified.sid)
    assert (refused.value.status, refused.value.code) == (403, 60318)

    factor, _, _ = verified_totp(tenant, who)
    now = datetime.now(UTC)
    for expiration in (now - timedelta(minutes=1), now + timedelta(minutes=61)):
        with pytest.raises(TwilioRestException) as bad:
            tenant.service.entities(who).challenges.create(
                factor_sid=factor.sid, expiration_date=expiration
            )
        assert (bad.value.status, bad.value.code) == (400, 60200)
    made = tenant.service.entities(who).challenges.create(factor_sid=factor.sid)
    assert made.status == "pending" and made.responded_reason == "none"
    lifetime = made.expiration_date - made.date_created
    assert timedelta(minutes=4, seconds=58) <= lifetime <= timedelta(minutes=5, seconds=1)
    with pytest.raises(TwilioRestException) as unknown:
        tenant.service.entities(who).challenges.create(factor_sid="YF" + "0" * 32)
    assert unknown.value.status == 404
    with pytest.raises(TwilioRestException) as stranger:
        tenant.service.entities(identity()).challenges.create(factor_sid=factor.sid)
    assert stranger.value.status == 404


# ---- webhooks -----------------------------------------------------------------------------------


def test_factor_and_challenge_webhooks(
    stack: Stack, tenant: Tenant, own_receiver: WebhookReceiver
) -> None:
    path = "/totp/events"
    tenant.service.webhooks.create(
        friendly_name="factors",
        event_types=["factor.created", "factor.verified", "factor.deleted", "challenge.approved"],
        webhook_url=own_receiver.url(path),
    )
    tenant.service.webhooks.create(
        friendly_name="denials only",
        event_types=["challenge.denied"],
        webhook_url=own_receiver.url("/totp/other"),
    )
    who = identity()
    factor, secret, at = verified_totp(tenant, who)
    created = assert_signed(
        wait_event(own_receiver, path, "factor.created", factor.sid), own_receiver.url(path), tenant
    )
    assert created == {
        "uuid": f"evt_{factor.sid}_factor_created",
        "type": "factor.created",
        "account_sid": tenant.account_sid,
        "service_sid": tenant.service_sid,
        "entity_identity": who,
        "factor_sid": factor.sid,
        "factor_type": "totp",
        "factor_friendly_name": "Authenticator",
    }
    verified = wait_event(own_receiver, path, "factor.verified", factor.sid)
    assert assert_signed(verified, own_receiver.url(path), tenant)["factor_sid"] == factor.sid

    challenge = tenant.service.entities(who).challenges.create(
        factor_sid=factor.sid, auth_payload=otp(secret, at + 30), details_message="Sign in?"
    )
    assert challenge.details == {"message": "Sign in?", "fields": []}
    approved = form(wait_event(own_receiver, path, "challenge.approved", challenge.sid))
    assert approved["challenge_sid"] == challenge.sid
    assert approved["factor_type"] == "totp"
    assert json.loads(approved["challenge_details"]) == {"message": "Sign in?", "fields": []}

    tenant.service.entities(who).factors(factor.sid).delete()
    deleted = wait_event(own_receiver, path, "factor.deleted", factor.sid)
    assert assert_signed(deleted, own_receiver.url(path), tenant)["type"] == "factor.deleted"
    time.sleep(0.5)
    assert events(own_receiver, "/totp/other") == []
    assert sorted(e["type"] for e in events(own_receiver, path)) == [
        "challenge.approved",
        "factor.created",
        "factor.deleted",
        "factor.verified",
    ]

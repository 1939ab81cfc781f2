"""Twilio Verify Webhooks (YW…) through the official `twilio` SDK, against the real stack.

- the Webhook resource: create, fetch, update, delete and list, and the 60200 answers;
- verification events (`verification.approved`, `verification.canceled`) fanned out to every
  enabled webhook subscribed to them, as form posts whose `X-Twilio-Signature` passes the SDK's
  own `RequestValidator` and whose Standard Webhooks headers pass `standardwebhooks`;
- nothing for webhooks subscribed to other events or disabled; retries per endpoint; 410 Gone
  disables the webhook; private webhook URLs refused when the deployment says so.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
import standardwebhooks
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from orchestrator.dialects.twilio import webhook_events as twilio_webhooks
from orchestrator.domain.effects import Emit
from orchestrator.domain.models import Channel, Status, Step, Verification
from orchestrator.security.signing import twilio_signature
from tests.support.processes import Stack, never, running_stack, wait_until
from tests.support.receiver import Delivery, WebhookReceiver
from tests.support.twilio import Tenant, basic_request, new_account, new_tenant, sdk_client


@pytest.fixture
def tenant(stack: Stack) -> Tenant:
    return new_tenant(stack, "twilio-webhooks", "Webhook test")


def new_number() -> str:
    return "+4477009" + f"{random.randrange(10**5):05d}"


def at(receiver: WebhookReceiver, path: str) -> list[Delivery]:
    return [d for d in list(receiver.deliveries) if d.path == path]


def wait_deliveries(receiver: WebhookReceiver, path: str, count: int = 1) -> list[Delivery]:
    found: list[Delivery] = wait_until(
        lambda: (hits := at(receiver, path)) and len(hits) >= count and hits,
        timeout=15,
        what=f"{count} delivery(ies) to {path}",
    )
    return found


def form(delivery: Delivery) -> dict[str, str]:
    pairs = parse_qsl(delivery.body.decode(), keep_blank_values=True, strict_parsing=True)
    params = dict(pairs)
    assert len(params) == len(pairs), "a parameter was sent twice"
    return params


def read_code(tenant: Tenant, to: str, verification_sid: str) -> str:
    def find() -> str | None:
        for message in tenant.outbox(to):
            if message["request_id"] == verification_sid:
                return str(message["code"])
        return None

    code: str = wait_until(find, timeout=10, what=f"the code sent to {to}")
    return code


def approve(tenant: Tenant) -> tuple[str, str]:
    """Start an SMS verification and approve it with the code from the sandbox outbox."""
    to = new_number()
    started = tenant.service.verifications.create(to=to, channel="sms")
    assert started.status == "pending"
    code = read_code(tenant, to, started.sid)
    check = tenant.service.verification_checks.create(to=to, code=code)
    assert check.status == "approved" and check.valid is True
    return started.sid, to


def hook(tenant: Tenant, receiver: WebhookReceiver, path: str, events: list[str], **kw: Any) -> Any:
    return tenant.service.webhooks.create(
        friendly_name=path.strip("/")[:64],
        event_types=events,
        webhook_url=receiver.url(path),
        **kw,
    )


def assert_signed(delivery: Delivery, url: str, tenant: Tenant) -> dict[str, str]:
    """Both proofs hold: Twilio's over URL + sorted params, Standard Webhooks over the bytes."""
    params = form(delivery)
    signature = delivery.headers["x-twilio-signature"]
    assert RequestValidator(tenant.auth_token).validate(url, params, signature) is True
    assert RequestValidator("0" * 32).validate(url, params, signature) is False
    tampered = {**params, "status": "approved" if params["status"] != "approved" else "denied"}
    assert RequestValidator(tenant.auth_token).validate(url, tampered, signature) is False
    assert RequestValidator(tenant.auth_token).validate(url + "x", params, signature) is False

    hook_ = standardwebhooks.Webhook(tenant.webhook_secret)
    hook_.verify(delivery.body, delivery.headers, json_parse=False)
    forged = {**delivery.headers, "webhook-id": delivery.headers["webhook-id"] + "x"}
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        hook_.verify(delivery.body, forged, json_parse=False)
    assert delivery.headers["content-type"] == "application/x-www-form-urlencoded"
    return params


# ---- the Webhook resource -------------------------------------------------------------------------


def test_webhook_crud_and_list(tenant: Tenant, stack: Stack) -> None:
    created = tenant.service.webhooks.create(
        friendly_name="push events",
        event_types=["factor.created", "challenge.approved", "factor.created"],
        webhook_url="https://93.184.215.14/hook?x=1",
    )
    assert created.sid.startswith("YW") and len(created.sid) == 34
    assert created.service_sid == tenant.service_sid
    assert created.account_sid == tenant.account_sid
    assert created.friendly_name == "push events"
    assert created.event_types == ["factor.created", "challenge.approved"]
    assert created.status == "enabled"
    assert created.version == "v2"
    assert created.webhook_url == "https://93.184.215.14/hook?x=1"
    assert created.webhook_method == "POST"
    assert isinstance(created.date_created, datetime)
    assert isinstance(created.date_updated, datetime)
    assert created.url == f"{stack.url}/v2/Services/{tenant.service_sid}/Webhooks/{created.sid}"

    second = tenant.service.webhooks.create(
        friendly_name="verifications",
        event_types=["verification.approved", "verification.canceled"],
        webhook_url="https://93.184.215.14/verify",
        status="disabled",
        resource_version="v1",
    )
    assert second.status == "disabled" and second.version == "v1"

    fetched = tenant.service.webhooks(created.sid).fetch()
    assert fetched.sid == created.sid
    assert fetched.event_types == created.event_types

    updated = tenant.service.webhooks(created.sid).update(
        friendly_name="renamed", event_types=["*"], status="disabled"
    )
    assert updated.friendly_name == "renamed"
    assert updated.event_types == ["*"]
    assert updated.status == "disabled"
    assert updated.webhook_url == created.webhook_url  # untouched
    assert updated.version == "v2"
    again = tenant.service.webhooks(created.sid).update(
        webhook_url="https://93.184.215.15/other", status="enabled", resource_version="v1"
    )
    assert (again.webhook_url, again.status, again.version) == (
        "https://93.184.215.15/other",
        "enabled",
        "v1",
    )
    assert again.event_types == ["*"]

    listed = tenant.service.webhooks.list()
    assert [w.sid for w in listed] == [created.sid, second.sid]
    # paging follows the absolute next_page_url back to this server
    paged = tenant.service.webhooks.list(page_size=1)
    assert [w.sid for w in paged] == [created.sid, second.sid]
    raw = tenant.request("GET", f"/v2/Services/{tenant.service_sid}/Webhooks")
    assert raw.status_code == 200
    assert raw.json()["meta"]["key"] == "webhooks"
    assert set(raw.json()["webhooks"][0]) == {
        "sid",
        "service_sid",
        "account_sid",
        "friendly_name",
        "event_types",
        "status",
        "version",
        "webhook_url",
        "webhook_method",
        "date_created",
        "date_updated",
        "url",
    }
    assert raw.json()["webhooks"][0]["date_created"] is not None
    for field in ("date_created", "date_updated"):
        value = raw.json()["webhooks"][0][field]
        assert datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")

    assert tenant.service.webhooks(second.sid).delete() is True
    with pytest.raises(TwilioRestException) as gone:
        tenant.service.webhooks(second.sid).fetch()
    assert (gone.value.status, gone.value.code) == (404, 20404)
    assert [w.sid for w in tenant.service.webhooks.list()] == [created.sid]

    # another account can't see it, even knowing both sids
    other = new_account(stack, "twilio-webhooks")
    stranger = sdk_client(stack, other.sid, other.token)
    with pytest.raises(TwilioRestException) as hidden:
        stranger.verify.v2.services(tenant.service_sid).webhooks(created.sid).fetch()
    assert hidden.value.status == 404


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"EventTypes": ["*"], "WebhookUrl": "https://93.184.215.14/h"}, "FriendlyName"),
        (
            {"FriendlyName": "x" * 65, "EventTypes": ["*"], "WebhookUrl": "https://93.184.215.14/"},
            "FriendlyName",
        ),
        ({"FriendlyName": "a", "WebhookUrl": "https://93.184.215.14/h"}, "EventTypes"),
        (
            {
                "FriendlyName": "a",
                "EventTypes": ["*", "factor.bogus"],
                "WebhookUrl": "https://93.184.215.14",
            },
            "EventTypes",
        ),
        ({"FriendlyName": "a", "EventTypes": ["*"]}, "WebhookUrl"),
        ({"FriendlyName": "a", "EventTypes": ["*"], "WebhookUrl": "ftp://e.com/x"}, "WebhookUrl"),
        ({"FriendlyName": "a", "EventTypes": ["*"], "WebhookUrl": "not a url"}, "WebhookUrl"),
        (
            {
                "FriendlyName": "a",
                "EventTypes": ["*"],
                "WebhookUrl": "https://93.184.215.14",
                "Status": "on",
            },
            "Status",
        ),
        (
            {
                "FriendlyName": "a",
                "EventTypes": ["*"],
                "WebhookUrl": "https://93.184.215.14",
                "Version": "v3",
            },
            "Version",
        ),
    ],
)
def test_invalid_create_is_60200(tenant: Tenant, params: dict[str, Any], name: str) -> None:
    resp = tenant.request("POST", f"/v2/Services/{tenant.service_sid}/Webhooks", data=params)
    assert resp.status_code == 400, resp.text
    assert resp.json() == {
        "code": 60200,
        "message": f"Invalid parameter: {name}",
        "more_info": "https://www.twilio.com/docs/errors/60200",
        "status": 400,
    }


def test_invalid_update_is_60200_through_the_sdk(tenant: Tenant) -> None:
    created = tenant.service.webhooks.create(
        friendly_name="a", event_types=["*"], webhook_url="https://93.184.215.14/h"
    )
    with pytest.raises(TwilioRestException) as bad:
        tenant.service.webhooks(created.sid).update(event_types=["verification.unknown"])
    assert (bad.value.status, bad.value.code) == (400, 60200)
    assert "Invalid parameter: EventTypes" in bad.value.msg
    with pytest.raises(TwilioRestException) as bad_url:
        tenant.service.webhooks(created.sid).update(webhook_url="javascript:alert(1)")
    assert (bad_url.value.status, bad_url.value.code) == (400, 60200)
    assert tenant.service.webhooks(created.sid).fetch().event_types == ["*"]


# ---- verification events --------------------------------------------------------------------------


def test_approved_verification_is_delivered_signed_to_each_subscriber(
    tenant: Tenant, own_receiver: WebhookReceiver
) -> None:
    only = hook(tenant, own_receiver, "/tw/approved?tag=a%20b", ["verification.approved"])
    star = hook(tenant, own_receiver, "/tw/star", ["*"], resource_version="v1")
    started = datetime.now(UTC) - timedelta(seconds=5)
    vsid, to = approve(tenant)

    [d_only] = wait_deliveries(own_receiver, "/tw/approved?tag=a%20b")
    [d_star] = wait_deliveries(own_receiver, "/tw/star")
    p_only = assert_signed(d_only, own_receiver.url("/tw/approved?tag=a%20b"), tenant)
    p_star = assert_signed(d_star, own_receiver.url("/tw/star"), tenant)
    assert p_only == p_star
    assert set(p_only) == {
        "uuid",
        "type",
        "account_sid",
        "service_sid",
        "verification_sid",
        "to",
        "channel",
        "status",
        "date_created",
        "date_updated",
    }
    assert p_only["type"] == "verification.approved"
    assert p_only["status"] == "approved"
    assert p_only["account_sid"] == tenant.account_sid
    assert p_only["service_sid"] == tenant.service_sid
    assert p_only["verification_sid"] == vsid
    assert p_only["to"] == to
    assert p_only["channel"] == "sms"
    for field in ("date_created", "date_updated"):
        moment = datetime.strptime(p_only[field], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert started <= moment <= datetime.now(UTC) + timedelta(seconds=5)

    # one event, one endpoint message each: ids differ per endpoint, the event uuid is shared
    assert d_only.headers["webhook-id"] == f"{p_only['uuid']}-{only.sid}"
    assert d_star.headers["webhook-id"] == f"{p_only['uuid']}-{star.sid}"
    assert d_only.headers["i-twilio-idempotency-token"] == d_only.headers["webhook-id"]
    never(lambda: len(own_receiver.deliveries) > 2, 1.0, "a third delivery")


def test_canceled_verification_is_delivered(
    stack: Stack, tenant: Tenant, own_receiver: WebhookReceiver
) -> None:
    hook(tenant, own_receiver, "/tw/canceled", ["verification.canceled"])
    to = new_number()
    started = tenant.service.verifications.create(to=to, channel="sms")
    canceled = tenant.service.verifications(started.sid).update(status="canceled")
    assert canceled.status == "canceled"

    [delivery] = wait_deliveries(own_receiver, "/tw/canceled")
    params = assert_signed(delivery, own_receiver.url("/tw/canceled"), tenant)
    assert params["type"] == "verification.canceled"
    assert params["status"] == "canceled"
    assert params["verification_sid"] == started.sid
    assert params["to"] == to


def test_email_verification_event_carries_the_address(
    stack: Stack, tenant: Tenant, own_receiver: WebhookReceiver
) -> None:
    hook(tenant, own_receiver, "/tw/email", ["*"])
    to = f"user-{uuid.uuid4().hex[:8]}@example.com"
    started = tenant.service.verifications.create(to=to, channel="email")
    tenant.service.verifications(started.sid).update(status="canceled")
    [delivery] = wait_deliveries(own_receiver, "/tw/email")
    params = assert_signed(delivery, own_receiver.url("/tw/email"), tenant)
    assert (params["to"], params["channel"]) == (to, "email")


def test_unsubscribed_and_disabled_webhooks_receive_nothing(
    tenant: Tenant, own_receiver: WebhookReceiver
) -> None:
    hook(
        tenant, own_receiver, "/tw/factors", ["factor.created", "factor.verified", "factor.deleted"]
    )
    hook(tenant, own_receiver, "/tw/challenges", ["challenge.approved", "challenge.denied"])
    hook(tenant, own_receiver, "/tw/cancel-only", ["verification.canceled"])
    hook(tenant, own_receiver, "/tw/disabled", ["*"], status="disabled")
    later = hook(tenant, own_receiver, "/tw/later-disabled", ["*"])
    tenant.service.webhooks(later.sid).update(status="disabled")
    hook(tenant, own_receiver, "/tw/sync", ["verification.approved"])

    approve(tenant)
    wait_deliveries(own_receiver, "/tw/sync")
    never(
        lambda: [d.path for d in own_receiver.deliveries if d.path != "/tw/sync"],
        1.5,
        "a delivery to an unsubscribed or disabled webhook",
    )
    assert len(at(own_receiver, "/tw/sync")) == 1


def test_a_webhook_of_another_service_receives_nothing(
    tenant: Tenant, own_receiver: WebhookReceiver
) -> None:
    other = tenant.client.verify.v2.services.create(friendly_name="Other")
    tenant.client.verify.v2.services(other.sid).webhooks.create(
        friendly_name="other", event_types=["*"], webhook_url=own_receiver.url("/tw/other")
    )
    hook(tenant, own_receiver, "/tw/mine", ["*"])
    approve(tenant)
    wait_deliveries(own_receiver, "/tw/mine")
    never(lambda: at(own_receiver, "/tw/other"), 1.0, "a delivery to another service's webhook")


def test_a_failed_attempt_is_retried_with_the_same_id(
    tenant: Tenant, own_receiver: WebhookReceiver
) -> None:
    own_receiver.responses.extend([503, 500])
    hook(tenant, own_receiver, "/tw/flaky", ["verification.approved"])
    approve(tenant)
    attempts = wait_deliveries(own_receiver, "/tw/flaky", 3)
    assert [d.status for d in attempts] == [503, 500, 204]
    assert len({d.headers["webhook-id"] for d in attempts}) == 1
    assert len({d.body for d in attempts}) == 1
    for d in attempts:
        assert_signed(d, own_receiver.url("/tw/flaky"), tenant)
    never(lambda: len(own_receiver.deliveries) > 3, 1.0, "a fourth attempt")


def test_gone_disables_the_webhook(tenant: Tenant, own_receiver: WebhookReceiver) -> None:
    own_receiver.responses.append(410)
    gone = hook(tenant, own_receiver, "/tw/gone", ["*"])
    approve(tenant)
    [delivery] = wait_deliveries(own_receiver, "/tw/gone")
    assert delivery.status == 410
    wait_until(
        lambda: tenant.service.webhooks(gone.sid).fetch().status == "disabled",
        timeout=10,
        what="the webhook to be disabled",
    )
    never(lambda: len(own_receiver.deliveries) > 1, 1.0, "a retry after 410 Gone")

    # disabled: the next event is not sent; enabled again: it is
    approve(tenant)
    never(lambda: len(own_receiver.deliveries) > 1, 1.0, "a delivery to a disabled webhook")
    tenant.service.webhooks(gone.sid).update(status="enabled")
    approve(tenant)
    wait_deliveries(own_receiver, "/tw/gone", 2)


# ---- SSRF guard: a deployment that refuses private webhook URLs ---------------------------------


@pytest.fixture(scope="module")
def strict_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """redis-server + serve only (no worker), with VERIFY_WEBHOOK_ALLOW_PRIVATE=false."""
    workdir = tmp_path_factory.mktemp("strict")
    with running_stack(workdir, workers=0, VERIFY_WEBHOOK_ALLOW_PRIVATE="false") as s:
        yield s


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
        "https://user:pw@example.com/hook",
    ],
)
def test_private_webhook_url_is_refused(strict_stack: Stack, url: str) -> None:
    account = new_account(strict_stack, "twilio-webhooks")
    auth = (account.sid, account.token)

    def post(path: str, data: dict[str, Any]) -> requests.Response:
        return basic_request(strict_stack, auth, "POST", path, data=data)

    service = post("/v2/Services", {"FriendlyName": "strict"})
    assert service.status_code == 201, service.text
    base = f"/v2/Services/{service.json()['sid']}/Webhooks"
    refused = post(base, {"FriendlyName": "x", "EventTypes": "*", "WebhookUrl": url})
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == 60200
    assert refused.json()["message"] == "Invalid parameter: WebhookUrl"

    # an update may not point an existing webhook there either
    fine = post(
        base, {"FriendlyName": "x", "EventTypes": "*", "WebhookUrl": "http://93.184.215.14/h"}
    )
    assert fine.status_code == 201, fine.text
    moved = post(f"{base}/{fine.json()['sid']}", {"WebhookUrl": url})
    assert moved.status_code == 400
    assert moved.json()["message"] == "Invalid parameter: WebhookUrl"


# ---- pure pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hook", "http://127.0.0.1:8080/h?a=1&b=%20x", "https://93.184.215.14"],
)
def test_signature_is_twilios(url: str) -> None:
    token = uuid.uuid4().hex
    params: dict[str, Any] = {
        "uuid": "msg_x_1",
        "type": "verification.approved",
        "to": "+447700900123",
        "Z": "last",
        "a": "",
        "unicode": "Grüße ✓",
    }
    expected = RequestValidator(token).compute_signature(url, params)
    assert twilio_signature(token, url, params) == expected
    assert RequestValidator(token).validate(url, params, twilio_signature(token, url, params))

    class Multi(dict[str, list[str]]):
        def getall(self, name: str) -> list[str]:
            return self[name]

    repeated = Multi({"EventTypes": ["b", "a", "b"], "x": ["1"]})
    assert twilio_signature(token, url, repeated) == RequestValidator(token).compute_signature(
        url, repeated
    )


def _verification(status: Status, wrong: int = 0, to: str = "447700900123") -> Verification:
    now = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    return Verification(
        request_id="VE" + "a" * 32,
        tenant="VA" + "b" * 32,
        account="AC" + "c" * 32,
        brand="Acme",
        locale="en-gb",
        channel_timeout=600,
        code_length=6,
        steps=[Step(channel=Channel.SMS, to=to)],
        current=0,
        status=status,
        created_at=now,
        finished_at=now + timedelta(seconds=30),
        wrong_attempts=wrong,
        notify=True,
        dialect="twilio",
    )


@pytest.mark.parametrize(
    ("status", "wrong", "event"),
    [
        (Status.COMPLETED, 0, "verification.approved"),
        (Status.CANCELLED, 0, "verification.canceled"),
        (Status.EXPIRED, 0, "verification.expired"),
        (Status.FAILED, 5, "verification.max_attempts_reached"),
        (Status.FAILED, 0, "verification.failed"),
    ],
)
def test_summary_renders_a_verification_event(status: Status, wrong: int, event: str) -> None:
    v = _verification(status, wrong)
    assert v.finished_at is not None
    params = twilio_webhooks.render_event(v, Emit("summary", None, status.value, v.finished_at, 3))
    assert params == {
        "uuid": f"msg_{v.request_id}_3",
        "type": event,
        "account_sid": v.account,
        "service_sid": v.tenant,
        "verification_sid": v.request_id,
        "to": "+447700900123",
        "channel": "sms",
        "status": event.removeprefix("verification."),
        "date_created": "2024-05-06T07:08:09Z",
        "date_updated": "2024-05-06T07:08:39Z",
    }
    assert event in twilio_webhooks.EVENT_TYPES


def test_step_events_render_no_message() -> None:
    v = _verification(Status.PENDING)
    event = Emit("event", 0, "action_pending", v.created_at, 1)
    assert twilio_webhooks.render_event(v, event) is None
    assert twilio_webhooks.render_event(v, Emit("summary", None, "x", v.created_at, 2)) is None


def test_subscription_matching() -> None:
    wh = twilio_webhooks.Webhook(
        sid="YW" + "0" * 32,
        service_sid="VA" + "0" * 32,
        account_sid="AC" + "0" * 32,
        friendly_name="x",
        event_types=["verification.approved"],
        webhook_url="https://example.com",
        date_created="2024-01-01T00:00:00.000Z",
        date_updated="2024-01-01T00:00:00.000Z",
    )
    assert twilio_webhooks.subscribed(wh, "verification.approved")
    assert not twilio_webhooks.subscribed(wh, "verification.canceled")
    star = wh.model_copy(update={"event_types": ["*"]})
    assert twilio_webhooks.subscribed(star, "verification.canceled")
    assert not twilio_webhooks.subscribed(star.model_copy(update={"status": "disabled"}), "x")

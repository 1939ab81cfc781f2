"""Webhook delivery through the real worker: signatures, retries, 410 Gone and the SSRF guard."""

from __future__ import annotations

import hashlib
import random
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import redis
import requests
import standardwebhooks
import vonage_jwt

from tests.support.client import TestApp, VonageApi
from tests.support.processes import CLI, Stack, never, wait_until
from tests.support.receiver import Delivery, WebhookReceiver


def even_magic() -> str:
    """A virtual-operator number whose silent auth completes."""
    return "990" + f"{random.randrange(10**7):07d}" + random.choice("02468")


def silent_auth_start(api: VonageApi, to: str) -> tuple[str, str]:
    """A start whose only webhook, until the device acts, is the action_pending event."""
    resp = api.start({"brand": "ACME", "workflow": [{"channel": "silent_auth", "to": to}]})
    assert resp.status_code == 202, resp.text
    return resp.json()["request_id"], resp.json()["check_url"]


def complete_silent_auth(stack: Stack, api: VonageApi, rid: str, check_url: str) -> None:
    device = requests.get(check_url, verify=str(stack.cert), timeout=10)
    assert device.status_code == 200, device.text
    checked = api.check(rid, device.json()["code"])
    assert checked.status_code == 200, checked.text


def assert_signed(delivery: Delivery, app: TestApp) -> dict[str, Any]:
    """Both proofs hold over the exact bytes received; returns the Vonage JWT claims."""
    scheme, _, token = delivery.headers["authorization"].partition(" ")
    assert scheme == "Bearer"
    assert vonage_jwt.verify_signature(token, app.signature_secret) is True
    claims: dict[str, Any] = jwt.decode(token, app.signature_secret, algorithms=["HS256"])
    assert claims["payload_hash"] == hashlib.sha256(delivery.body).hexdigest()
    assert claims["iss"] == "Vonage"
    assert claims["api_key"] == app.api_key
    assert claims["application_id"] == app.application_id
    assert vonage_jwt.verify_signature(token, "not-the-signature-secret-0123456789") is False

    parsed = standardwebhooks.Webhook(app.webhook_secret).verify(delivery.body, delivery.headers)
    assert parsed == delivery.json
    forged = {**delivery.headers, "webhook-id": delivery.headers["webhook-id"] + "x"}
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(app.webhook_secret).verify(delivery.body, forged)
    return claims


def test_every_webhook_is_signed_both_ways(
    stack: Stack, app: TestApp, api: VonageApi, receiver: WebhookReceiver
) -> None:
    rid, check_url = silent_auth_start(api, even_magic())
    complete_silent_auth(stack, api, rid, check_url)
    receiver.wait_summary(rid)
    deliveries = wait_until(
        lambda: (found := receiver.for_request(rid)) and len(found) >= 3 and found,
        what="three webhooks",
    )
    kinds = sorted((d.json["type"], d.json.get("status")) for d in deliveries)
    assert kinds == [("event", "action_pending"), ("event", "completed"), ("summary", "completed")]
    assert all(d.path == app.hook_path for d in deliveries)
    assert all(d.headers["content-type"] == "application/json" for d in deliveries)
    jtis = {assert_signed(d, app)["jti"] for d in deliveries}
    assert len(jtis) == len(deliveries)
    assert len({d.headers["webhook-id"] for d in deliveries}) == len(deliveries)


def test_a_delivered_message_is_kept_no_longer_than_the_retention(
    stack: Stack, api: VonageApi, receiver: WebhookReceiver, db: redis.Redis
) -> None:
    # its body reports on one destination: once delivered it lives as long as the verification
    # (VERIFY_RETENTION_SECONDS, a day here), not the 4 days an undelivered one is kept for
    rid, check_url = silent_auth_start(api, even_magic())
    complete_silent_auth(stack, api, rid, check_url)
    summary = receiver.wait_summary(rid)
    key = "vo:wh:" + summary.headers["webhook-id"]

    def delivered_ttl() -> int | None:
        ttl = int(db.pttl(key))
        return ttl if db.hget(key, "delivered_ms") is not None else None

    ttl = wait_until(delivered_ttl, what="the delivered mark")
    assert 0 < ttl <= 86_400_000


def test_failed_attempts_are_retried_with_the_same_id(
    stack: Stack, make_app: Callable[..., TestApp], own_receiver: WebhookReceiver
) -> None:
    own_receiver.responses.extend([503, 503])
    app = make_app(status_url=own_receiver.url("/hooks/retry"))
    api = VonageApi(stack.url, app, verify=str(stack.cert))
    rid, _ = silent_auth_start(api, even_magic())

    wait_until(
        lambda: any(d.status == 204 for d in own_receiver.deliveries),
        what="the third attempt to be accepted",
    )
    attempts = list(own_receiver.deliveries)
    assert [d.status for d in attempts] == [503, 503, 204]
    assert {d.json["request_id"] for d in attempts} == {rid}
    assert {d.body for d in attempts} == {attempts[0].body}
    assert len({d.headers["webhook-id"] for d in attempts}) == 1
    stamps = [int(d.headers["webhook-timestamp"]) for d in attempts]
    assert stamps == sorted(stamps)
    for d, stamp in zip(attempts, stamps, strict=True):
        # each attempt is stamped and signed when it is sent, not when it was first queued
        assert abs(stamp - d.received_at) <= 1.5, (stamp, d.received_at)
        assert_signed(d, app)
    assert len({assert_signed(d, app)["jti"] for d in attempts}) == 3
    # a delivered message is not sent again
    never(lambda: len(own_receiver.deliveries) > 3, 1.0, "a fourth attempt")


def _apps(stack: Stack) -> dict[str, dict[str, Any]]:
    listed = stack.cli("apps", "list")
    assert isinstance(listed, list)
    return {str(a["application_id"]): a for a in listed}


def test_gone_disables_the_status_url(
    stack: Stack,
    make_app: Callable[..., TestApp],
    own_receiver: WebhookReceiver,
    receiver: WebhookReceiver,
) -> None:
    own_receiver.responses.append(410)
    app = make_app(status_url=own_receiver.url("/hooks/gone"))
    api = VonageApi(stack.url, app, verify=str(stack.cert))
    assert _apps(stack)[app.application_id]["status_url_disabled"] is False
    rid, check_url = silent_auth_start(api, even_magic())

    wait_until(lambda: own_receiver.deliveries, what="the first webhook")
    assert own_receiver.deliveries[0].status == 410
    assert own_receiver.deliveries[0].json["status"] == "action_pending"
    wait_until(
        lambda: _apps(stack)[app.application_id]["status_url_disabled"] is True,
        what="apps list to show the status URL disabled",
    )

    # control: another app, same flow, on the shared receiver, gets all its webhooks
    control = VonageApi(stack.url, make_app(), verify=str(stack.cert))
    control_rid, control_url = silent_auth_start(control, even_magic())
    complete_silent_auth(stack, api, rid, check_url)
    complete_silent_auth(stack, control, control_rid, control_url)
    receiver.wait_summary(control_rid)
    never(lambda: len(own_receiver.deliveries) > 1, 1.0, "a webhook to a disabled status URL")


@pytest.mark.parametrize(
    "status_url",
    ["http://127.0.0.1:9/hooks", "http://169.254.169.254/latest/meta-data/"],
)
def test_private_status_urls_are_refused(stack: Stack, status_url: str) -> None:
    env = {**stack.env, "VERIFY_WEBHOOK_ALLOW_PRIVATE": "false"}
    name = f"ssrf-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [*CLI, "apps", "create", "--name", name, "--status-url", status_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "error" in result.stderr and "non-public address" in result.stderr, result.stderr
    assert result.stdout.strip() == ""
    assert all(a["name"] != name for a in _apps(stack).values())

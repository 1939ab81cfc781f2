"""Silent auth and the SIM-swap gate through the production CAMARA adapter (`kind = "camara"`),
pointed at this service's own sandbox operator, through real processes.

The operators file names one CAMARA operator: OIDC discovery at `{public_url}/sandbox/operator`,
client authentication RFC 7523 private_key_jwt with a Vonage application's key, Number
Verification at Vonage's v031 path, SIM Swap at CAMARA's vwip path (three-legged CIBA tokens).
So the device's hops are: check URL → this service's redirect → the operator's /oauth2/auth
(PKCE, login_hint, prompt=none) → callback → token exchange + POST /verify (server side).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.client import TestApp, VonageApi, create_app
from tests.support.processes import Stack, build_stack, started, wait_until
from tests.support.receiver import WebhookReceiver
from tests.support.twilio import sdk_client

DEVICE_IP = "X-Sandbox-Device-IP"


@pytest.fixture(scope="module")
def camara_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, TestApp]]:
    workdir = tmp_path_factory.mktemp("camara")
    operators = workdir / "operators.toml"
    stack = build_stack(workdir / "stack", VERIFY_OPERATORS_FILE=str(operators))
    try:
        # the client's own application (client_id, private key), made before serve reads the file
        client = create_app(stack, "camara-client", "", workdir, "/unused")
        base = f"{stack.url}/sandbox/operator"
        operators.write_text(
            f"""
[operators.sandbox-camara]
kind = "camara"
issuer = "{base}"
number_verification_url = "{base}/camara/number-verification/v031"
sim_swap_url = "{base}/sim-swap/vwip"
client_id = "{client.application_id}"
client_auth = "private_key_jwt"
private_key = "{client.private_key_path}"
prefixes = ["447700900", "990"]
ca_file = "{stack.cert}"
"""
        )
    except BaseException:
        stack.redis.stop()
        raise
    with started(stack) as running:
        yield running, client


@pytest.fixture
def api(
    camara_stack: tuple[Stack, TestApp], receiver: WebhookReceiver, tmp_path: Path
) -> VonageApi:
    stack, _ = camara_stack
    hook = f"/hooks/{uuid.uuid4().hex}"
    app = create_app(stack, "camara-backend", receiver.url(hook), tmp_path, hook)
    client = VonageApi(stack.url, app, str(stack.cert))
    client.http.trust_env = False  # this stack's certificate, not REQUESTS_CA_BUNDLE's
    return client


def _magic(last: str) -> str:
    return "990" + f"{random.randrange(10**6):06d}" + last


def _start(api: VonageApi, workflow: list[dict[str, Any]]) -> dict[str, Any]:
    resp = api.start({"brand": "ACME", "workflow": workflow})
    assert resp.status_code == 202, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _device(stack: Stack, url: str, device_ip: str) -> requests.Response:
    """The handset over "mobile data": every hop followed, the operator's included."""
    return requests.get(url, headers={DEVICE_IP: device_ip}, verify=str(stack.cert), timeout=15)


def _events(receiver: WebhookReceiver, rid: str) -> list[dict[str, Any]]:
    return [d.json for d in receiver.for_request(rid) if d.json.get("type") == "event"]


def test_the_device_is_verified_through_the_camara_adapter(
    camara_stack: tuple[Stack, TestApp], api: VonageApi
) -> None:
    stack, client = camara_stack
    to = "447700900100"  # the line behind 100.64.0.0/16 in config/sandbox_operator.toml
    started_ = _start(api, [{"channel": "silent_auth", "to": to}, {"channel": "sms", "to": to}])
    hops = requests.get(
        started_["check_url"],
        headers={DEVICE_IP: "100.64.0.7"},
        allow_redirects=False,
        verify=str(stack.cert),
        timeout=10,
    )
    operator = urlsplit(hops.headers["Location"])
    assert operator.path == "/sandbox/operator/oauth2/auth"
    query = parse_qs(operator.query)
    assert query["client_id"] == [client.application_id]
    assert query["login_hint"] == ["tel:+" + to] and query["prompt"] == ["none"]
    assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
    # the check URL is single use: the manual first hop above took it
    again = _device(stack, started_["check_url"], "100.64.0.7")
    assert again.status_code >= 400 and "code" not in again.text, again.text


def test_a_full_device_flow_completes_and_the_code_checks(
    camara_stack: tuple[Stack, TestApp], api: VonageApi
) -> None:
    stack, _ = camara_stack
    to = "447700900100"
    started_ = _start(api, [{"channel": "silent_auth", "to": to}, {"channel": "sms", "to": to}])
    final = _device(stack, started_["check_url"], "100.64.0.7")
    assert final.status_code == 200, final.text
    body = final.json()
    assert body["request_id"] == started_["request_id"]
    resp = api.check(started_["request_id"], body["code"])
    assert resp.status_code == 200 and resp.json()["status"] == "completed", resp.text


def test_a_device_off_mobile_data_fails_over_with_the_reason_in_the_webhook(
    camara_stack: tuple[Stack, TestApp], api: VonageApi, receiver: WebhookReceiver
) -> None:
    stack, _ = camara_stack
    to = "447700900100"
    started_ = _start(api, [{"channel": "silent_auth", "to": to}, {"channel": "sms", "to": to}])
    rid = started_["request_id"]
    final = _device(stack, started_["check_url"], "192.0.2.10")  # not a mobile-data address
    assert final.status_code == 412, final.text
    failed = wait_until(
        lambda: [e for e in _events(receiver, rid) if e["status"] == "failed"],
        what="the silent_auth failed event",
    )[0]
    assert failed["channel"] == "silent_auth" and failed["reason"] == "not_on_mobile_network"
    sms = api.wait_message("+" + to, rid, "sms")
    assert sms["channel"] == "sms"


def test_a_recent_sim_swap_stops_the_sms_code_but_not_email(
    camara_stack: tuple[Stack, TestApp], api: VonageApi, receiver: WebhookReceiver
) -> None:
    """`apps update --sim-swap-max-age 24`: 990… numbers ending in 8 changed their SIM an hour
    ago (the sandbox operator's rule), asked through CIBA + the SIM Swap API."""
    stack, _ = camara_stack
    out = stack.cli("apps", "update", api.app.application_id, "--sim-swap-max-age", "24")
    assert isinstance(out, dict) and out["sim_swap_max_age_hours"] == 24
    swapped, clean = _magic("8"), _magic("6")
    email = f"user-{uuid.uuid4().hex[:8]}@example.com"
    rid = _start(api, [{"channel": "sms", "to": swapped}, {"channel": "email", "to": email}])[
        "request_id"
    ]
    failed = wait_until(
        lambda: [e for e in _events(receiver, rid) if e["status"] == "failed"],
        timeout=15,
        what="the sms step to fail on the SIM swap",
    )[0]
    assert failed["channel"] == "sms" and failed["reason"] == "sim_swap"
    assert api.messages("+" + swapped) == []
    assert api.wait_message(email, rid, "email")["channel"] == "email"
    # a number whose SIM did not change gets its SMS
    clean_rid = _start(api, [{"channel": "sms", "to": clean}])["request_id"]
    assert api.wait_message("+" + clean, clean_rid, "sms")["channel"] == "sms"
    # the window is the application's: 0 turns the gate off again
    stack.cli("apps", "update", api.app.application_id, "--sim-swap-max-age", "0")
    time.sleep(1.1)  # serve's application cache lets a change in within a second
    other = _magic("8")
    other_rid = _start(api, [{"channel": "sms", "to": other}])["request_id"]
    assert api.wait_message("+" + other, other_rid, "sms")["channel"] == "sms"


def test_a_twilio_service_setting_gates_its_sms_too(
    camara_stack: tuple[Stack, TestApp],
) -> None:
    stack, _ = camara_stack
    account = stack.cli("accounts", "create", "--name", "sim-swap-gate")
    assert isinstance(account, dict)
    sdk = sdk_client(stack, str(account["account_sid"]), str(account["auth_token"]))
    session = sdk.http_client.session
    session.trust_env, session.verify = False, str(stack.cert)
    service = sdk.verify.v2.services.create(friendly_name="Acme")
    out = stack.cli("services", "update", service.sid, "--sim-swap-max-age", "48")
    assert isinstance(out, dict) and out["sim_swap_max_age_hours"] == 48
    # the resource Twilio's SDK reads does not grow a field Twilio does not have
    raw = requests.get(
        f"{stack.url}/v2/Services/{service.sid}",
        auth=(str(account["account_sid"]), str(account["auth_token"])),
        verify=str(stack.cert),
        timeout=10,
    )
    assert raw.status_code == 200 and "sim_swap_max_age_hours" not in raw.json()
    swapped = _magic("8")
    created = sdk.verify.v2.services(service.sid).verifications.create(
        to="+" + swapped, channel="sms"
    )
    assert created.status == "pending"
    # Twilio answers 404 for a verification that is no longer pending: it failed, no code sent
    wait_until(
        lambda: (
            requests.get(
                f"{stack.url}/v2/Services/{service.sid}/Verifications/{created.sid}",
                auth=(str(account["account_sid"]), str(account["auth_token"])),
                verify=str(stack.cert),
                timeout=10,
            ).status_code
            == 404
        ),
        timeout=15,
        what="the verification to fail on the SIM swap",
    )
    outbox = requests.get(
        f"{stack.url}/sandbox/v1/messages",
        params={"to": "+" + swapped},
        auth=(str(account["account_sid"]), str(account["auth_token"])),
        verify=str(stack.cert),
        timeout=10,
    )
    assert outbox.status_code == 200 and outbox.json() == []

"""Production delivery end to end, through real processes (redis-server, serve, worker) and
vendor peers that check requests against the vendors' published specs.

A providers file names two WhatsApp Cloud API accounts on one route, and a Twilio account for
SMS and voice to +1 numbers (everything else goes to the sandbox), so failover within a step,
routing by calling code, receipts that move the workflow on at once, forged receipts, a voice
call's keypad liveness check and the receipt metrics are seen from outside: the dialects' APIs
(and the official twilio SDK) in, the peers' received requests and the sandbox outbox out.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.client import TestApp, VonageApi, create_app
from tests.support.processes import Stack, never, running_stack, wait_until
from tests.support.receiver import WebhookReceiver
from tests.support.smsc import PerlSmsc, unavailable
from tests.support.threaded import running
from tests.support.twilio import sdk_client
from tests.support.twilio_peer import TwilioPeer
from tests.support.vonage_peer import VonagePeer
from tests.support.whatsapp_peer import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    WhatsAppPeer,
)

VERIFY_TOKEN = "hub-verify-token-4711"


def _providers_file(
    path: Path,
    first: str,
    second: str,
    twilio: TwilioPeer,
    vonage: VonagePeer,
    smsc: PerlSmsc | None,
) -> Path:
    def meta(name: str, url: str) -> str:
        return f"""
[providers.{name}]
kind = "whatsapp_cloud"
phone_number_id = "{PHONE_NUMBER_ID}"
access_token = "{ACCESS_TOKEN}"
app_secret = "{APP_SECRET}"
verify_token = "{VERIFY_TOKEN}"
template = "verify_code"
base_url = "{url}"
"""

    smpp, smpp_route = "", ""
    if smsc is not None:
        smpp = f"""
[providers.smsc]
kind = "smpp"
host = "127.0.0.1"
port = {smsc.port}
system_id = "{smsc.system_id}"
password = "{smsc.password}"
source_addr = "ACME"
"""
        smpp_route = '"49" = ["smsc"]\n'
    path.write_text(
        meta("meta-a", first)
        + meta("meta-b", second)
        + smpp
        + f"""
[providers.twilio-us]
kind = "twilio"
account_sid = "{twilio.account_sid}"
auth_token = "{twilio.auth_token}"
from = "{twilio.numbers[0]}"
base_url = "{twilio.base_url}"

[providers.vonage]
kind = "vonage"
channels = ["sms"]
api_key = "{vonage.api_key}"
api_secret = "{vonage.api_secret}"
signature_secret = "{vonage.signature_secret}"
base_url = "{vonage.url}"

[providers.sandbox]
kind = "sandbox"

[routes.whatsapp]
default = ["meta-a", "meta-b"]

[routes.sms]
default = ["sandbox"]
"1" = ["twilio-us"]
"33" = ["vonage"]
{smpp_route}
[routes.voice]
default = ["sandbox"]
"1" = ["twilio-us"]
"""
    )
    return path


class World:
    """The stack, the two Graph API peers (on one loop thread) and a Vonage-dialect client."""

    def __init__(
        self,
        stack: Stack,
        a: WhatsAppPeer,
        b: WhatsAppPeer,
        twilio: TwilioPeer,
        vonage: VonagePeer,
        smsc: PerlSmsc | None,
    ) -> None:
        self.stack, self.a, self.b, self.twilio, self.vonage = stack, a, b, twilio, vonage
        self.smsc = smsc

    def reset(self) -> None:
        for peer in (self.a, self.b):
            peer.mode, peer.error_code = "ok", None
            peer.requests.clear()

    def post_twilio(
        self, url: str, params: list[tuple[str, str]], auth_token: str | None = None
    ) -> requests.Response:
        """A form post signed as Twilio signs it (the twilio package's RequestValidator)."""
        headers, body = self.twilio.signed(url, params, auth_token=auth_token)
        return requests.post(
            url, data=body, headers=headers, verify=str(self.stack.cert), timeout=10
        )

    def post_receipt(self, provider: str, payload: dict[str, Any], **kw: Any) -> requests.Response:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = self.b.sign(body)
        if kw.get("tamper"):
            body = body.replace(b'"status":"', b'"status":"x', 1)
        if kw.get("unsigned"):
            del headers["X-Hub-Signature-256"], headers["X-Hub-Signature"]
        return requests.post(
            f"{self.stack.url}/providers/{provider}/status",
            data=body,
            headers=headers,
            verify=str(self.stack.cert),
            timeout=10,
        )


@contextmanager
def _smsc(workdir: Path) -> Iterator[PerlSmsc | None]:
    """Debian's Net::SMPP as the SMSC; None (its test skips) where it is not installed,
    except under CI, which installs it."""
    why = unavailable()
    if why is not None:
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"CI must run the SMPP tests: {why}")
        yield None
        return
    with PerlSmsc(workdir) as smsc:
        yield smsc


@asynccontextmanager
async def _vonage_peer() -> AsyncIterator[VonagePeer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    peer = VonagePeer(
        api_key="a1b2c3d4",
        api_secret="Vonage-api-secret-1",
        application_id=str(uuid.uuid4()),
        public_key_pem=public.decode(),
        signature_secret="Vonage-signature-secret-0123456789",
    )
    await peer.start()
    try:
        yield peer
    finally:
        await peer.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("delivery")
    with (
        running(WhatsAppPeer()) as (a, _),
        running(WhatsAppPeer()) as (b, _),
        running(TwilioPeer()) as (twilio, _),
        running(_vonage_peer()) as (vonage, _),
        _smsc(workdir / "smsc") as smsc,
    ):
        path = _providers_file(workdir / "providers.toml", a.url, b.url, twilio, vonage, smsc)
        with running_stack(
            workdir / "stack",
            VERIFY_PROVIDERS_FILE=str(path),
            VERIFY_SEND_TIMEOUT_SECONDS="2",
        ) as stack:
            yield World(stack, a, b, twilio, vonage, smsc)


@pytest.fixture
def vonage(world: World, receiver: WebhookReceiver, tmp_path: Path) -> VonageApi:
    world.reset()
    hook_path = f"/hooks/{uuid.uuid4().hex}"
    app: TestApp = create_app(world.stack, "delivery", receiver.url(hook_path), tmp_path, hook_path)
    api = VonageApi(world.stack.url, app, str(world.stack.cert))
    # REQUESTS_CA_BUNDLE (set for the session's shared stack, or by the machine) would win
    # over the session's own `verify`; this stack has a certificate of its own
    api.http.trust_env = False
    return api


def _number() -> str:
    return "4477009" + f"{random.randrange(10**5):05d}"


def _start(api: VonageApi, to: str) -> str:
    body = {
        "brand": "ACME",
        "channel_timeout": 300,
        "workflow": [
            {"channel": "whatsapp", "to": to, "from": "447700900500"},
            {"channel": "sms", "to": to},
        ],
    }
    resp = api.start(body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["request_id"])


def _delivered_to(peer: WhatsAppPeer, to: str) -> list[Any]:
    return [r for r in peer.requests if isinstance(r.body, dict) and r.body.get("to") == to]


def _code_of(request: Any) -> str:
    components = request.body["template"]["components"]
    body = next(c for c in components if c["type"] == "body")
    code = str(body["parameters"][0]["text"])
    assert re.fullmatch(r"\d{4,10}", code)
    return code


def _sent_id(peer: WhatsAppPeer, to: str) -> str:
    for wamid, body in peer.sent.items():
        if body.get("to") == to:
            return wamid
    raise AssertionError(f"no message to {to} accepted by the peer")


def test_an_erring_provider_hands_the_message_to_the_next_one(
    world: World, vonage: VonageApi
) -> None:
    world.a.mode = "fail"  # Graph's 500 with error code 1
    to = _number()
    rid = _start(vonage, to)
    sent = wait_until(lambda: _delivered_to(world.b, to), timeout=15, what="the send via meta-b")
    assert len(_delivered_to(world.a, to)) == 1 and world.a.requests[-1].answer_status == 500
    assert world.b.problems == []  # the peer found the body valid against Meta's schema
    resp = vonage.check(rid, _code_of(sent[0]))
    assert resp.status_code == 200 and resp.json()["status"] == "completed", resp.text
    # the next channel was never needed
    assert vonage.messages("+" + to) == []


def test_a_hanging_provider_is_given_up_and_the_next_one_takes_it(
    world: World, vonage: VonageApi
) -> None:
    world.a.mode = "hang"
    to = _number()
    _start(vonage, to)
    started = time.monotonic()
    wait_until(lambda: _delivered_to(world.b, to), timeout=15, what="the send via meta-b")
    assert 1.5 < time.monotonic() - started < 10  # VERIFY_SEND_TIMEOUT_SECONDS=2


def test_an_exhausted_route_fails_the_step_over_to_the_next_channel(
    world: World, vonage: VonageApi
) -> None:
    world.a.mode = "fail"
    world.b.error_code = 131030  # recipient not in the allowed list
    to = _number()
    rid = _start(vonage, to)
    sms = vonage.wait_message("+" + to, rid, "sms", timeout=15)
    assert len(_delivered_to(world.a, to)) == 1 and len(_delivered_to(world.b, to)) == 1
    assert re.search(r"\d{4,10}", sms["text"])


def test_a_failed_receipt_moves_the_workflow_on_at_once(world: World, vonage: VonageApi) -> None:
    to = _number()
    rid = _start(vonage, to)
    wait_until(lambda: _delivered_to(world.b, to) or _delivered_to(world.a, to), what="send")
    provider, peer = ("meta-a", world.a) if _delivered_to(world.a, to) else ("meta-b", world.b)
    wamid = _sent_id(peer, to)
    failed = peer.status_payload(
        wamid,
        "failed",
        recipient=to,
        errors=[{"code": 131026, "title": "Message undeliverable"}],
    )
    # forged first: refused, and nothing moves
    assert world.post_receipt(provider, failed, tamper=True).status_code == 403
    assert world.post_receipt(provider, failed, unsigned=True).status_code == 403
    never(lambda: vonage.messages("+" + to), within=1.0, what="an SMS after a forged receipt")
    # the real one: the SMS step starts now, not after the 300 s channel timeout
    assert world.post_receipt(provider, failed).status_code == 204
    sms = vonage.wait_message("+" + to, rid, "sms", timeout=10)
    assert sms["channel"] == "sms"


def test_delivered_receipts_feed_the_metrics(world: World, vonage: VonageApi) -> None:
    to = _number()
    _start(vonage, to)
    wait_until(lambda: _delivered_to(world.a, to), what="the send via meta-a")
    wamid = _sent_id(world.a, to)
    for status in ("sent", "delivered", "read"):
        payload = world.a.status_payload(wamid, status, recipient=to)
        assert world.post_receipt("meta-a", payload).status_code == 204
    metrics = requests.get(
        f"{world.stack.url}/metrics", verify=str(world.stack.cert), timeout=10
    ).text
    line = _metric(
        metrics,
        "verify_deliveries_total",
        'channel="whatsapp",country="GB",provider="meta-a",status="delivered"',
    )
    assert line >= 1
    assert (
        _metric(
            metrics,
            "verify_delivery_latency_seconds_count",
            'channel="whatsapp",provider="meta-a"',
        )
        >= 1
    )


def test_the_subscription_handshake_and_unknown_providers(world: World) -> None:
    url = f"{world.stack.url}/providers/meta-b/status"
    query = {
        "hub.mode": "subscribe",
        "hub.challenge": "1158201444",
        "hub.verify_token": VERIFY_TOKEN,
    }
    ok = requests.get(url, params=query, verify=str(world.stack.cert), timeout=10)
    assert ok.status_code == 200 and ok.text == "1158201444"
    wrong = requests.get(
        url, params={**query, "hub.verify_token": "guess"}, verify=str(world.stack.cert), timeout=10
    )
    assert wrong.status_code == 403 and "1158201444" not in wrong.text
    missing = requests.post(
        f"{world.stack.url}/providers/nobody/status",
        data=b"{}",
        verify=str(world.stack.cert),
        timeout=10,
    )
    assert missing.status_code == 404


def _metric(text: str, name: str, labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            found = line[len(name) + 1 : line.index("}")]
            if sorted(found.split(",")) == sorted(labels.split(",")):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def _us_number() -> str:
    return "14152" + f"{random.randrange(10**6):06d}"


def test_an_undelivered_sms_receipt_starts_the_voice_step_at_once(
    world: World, vonage: VonageApi
) -> None:
    """+1 goes to Twilio by the route's calling code; Twilio's StatusCallback saying
    undelivered (signed with the account's auth token) moves the workflow to voice now."""
    to = _us_number()
    body = {
        "brand": "ACME",
        "channel_timeout": 300,
        "workflow": [{"channel": "sms", "to": to}, {"channel": "voice", "to": to}],
    }
    resp = vonage.start(body)
    assert resp.status_code == 202, resp.text
    rid = resp.json()["request_id"]

    def sent(operation: str) -> list[Any]:
        return [r for r in world.twilio.sent(operation) if r.get("To") == "+" + to]

    message = wait_until(lambda: sent("CreateMessage"), timeout=15, what="the Twilio SMS")[0]
    assert message.get("From") == world.twilio.numbers[0]
    code = re.search(r"\d{4,10}", message.get("Body") or "")
    assert code, message.form
    callback = message.get("StatusCallback")
    assert callback == f"{world.stack.url}/providers/twilio-us/status"
    sid = message.resource["sid"]
    undelivered = world.twilio.message_status_params(sid, "undelivered", "30003")
    # signed with another token: a forgery, refused, and the call is not placed
    assert world.post_twilio(callback, undelivered, auth_token="0" * 32).status_code == 403
    never(lambda: sent("CreateCall"), within=1.0, what="a call after a forged receipt")
    assert world.post_twilio(callback, undelivered).status_code == 204
    call = wait_until(lambda: sent("CreateCall"), timeout=10, what="the Twilio call")[0]
    assert call.get("StatusCallback") == callback
    # the call reads out the voice step's code, digit by digit, and that code verifies
    spoken = re.search(r"(\d(?:, \d){3,9})", call.get("Twiml") or "")
    assert spoken, call.get("Twiml")
    resp = vonage.check(rid, spoken.group(1).replace(", ", ""))
    assert resp.status_code == 200 and resp.json()["status"] == "completed", resp.text
    # nothing of this went to the sandbox
    assert vonage.messages("+" + to) == []


def test_a_call_reads_the_code_only_after_the_right_key(world: World) -> None:
    """The Twilio dialect's dtmf_input_required: the call asks for a key (<Gather>), and the
    Gather action, answered by this service, reads the code only for that key."""
    account = world.stack.cli("accounts", "create", "--name", "voice-liveness")
    assert isinstance(account, dict)
    client = sdk_client(world.stack, str(account["account_sid"]), str(account["auth_token"]))
    # this stack's own certificate, not REQUESTS_CA_BUNDLE's (the session stack exports its own)
    session = client.http_client.session
    session.trust_env, session.verify = False, str(world.stack.cert)
    service = client.verify.v2.services.create(friendly_name="Acme", dtmf_input_required=True)
    to = "+" + _us_number()
    service_ctx = client.verify.v2.services(service.sid)
    service_ctx.verifications.create(to=to, channel="call")
    call = wait_until(
        lambda: [r for r in world.twilio.sent("CreateCall") if r.get("To") == to],
        timeout=15,
        what="the Twilio call",
    )[0]
    sid = call.resource["sid"]
    action = world.twilio.gather_action(sid)
    assert action.startswith(f"{world.stack.url}/providers/twilio-us/gather?t=")
    prompt = re.search(r"press (\d)", call.get("Twiml") or "")
    assert prompt, call.get("Twiml")
    digit = prompt.group(1)
    wrong = str((int(digit) + 1) % 10)
    answer = world.post_twilio(action, world.twilio.gather_params(sid, wrong))
    assert answer.status_code == 200 and "<Hangup" in answer.text
    assert not re.search(r"\d, \d, \d", answer.text)
    # a forged Gather callback gets nothing
    forged = world.post_twilio(action, world.twilio.gather_params(sid, digit), auth_token="0" * 32)
    assert forged.status_code == 403 and not re.search(r"\d, \d", forged.text)
    answer = world.post_twilio(action, world.twilio.gather_params(sid, digit))
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/xml")
    spoken = re.search(r"(\d(?:, \d){3,9})", answer.text)
    assert spoken, answer.text
    code = spoken.group(1).replace(", ", "")
    check = service_ctx.verification_checks.create(to=to, code=code)
    assert check.status == "approved"


def test_a_vonage_dlr_saying_failed_starts_the_next_step_at_once(
    world: World, vonage: VonageApi
) -> None:
    """+33 goes to Vonage's SMS API; its delivery receipt (GET, signed with the account's
    signature secret, md5hash as the dashboard's default) moves the workflow on now."""
    to = "336" + f"{random.randrange(10**8):08d}"
    body = {
        "brand": "ACME",
        "channel_timeout": 300,
        "workflow": [{"channel": "sms", "to": to}, {"channel": "voice", "to": to}],
    }
    resp = vonage.start(body)
    assert resp.status_code == 202, resp.text
    rid = resp.json()["request_id"]
    sent = wait_until(
        lambda: [m for m in world.vonage.sent if m.to == to], timeout=15, what="the Vonage SMS"
    )[0]
    assert sent.callback == f"{world.stack.url}/providers/vonage/status"
    params = world.vonage.dlr_params(sent, "failed", "6")
    forged = {**params, "status": "expired"}  # changed after signing
    cert = str(world.stack.cert)
    assert requests.get(sent.callback, params=forged, verify=cert, timeout=10).status_code == 403
    never(lambda: vonage.messages("+" + to), within=1.0, what="a call after a forged DLR")
    assert requests.get(sent.callback, params=params, verify=cert, timeout=10).status_code == 204
    call = vonage.wait_message("+" + to, rid, "voice", timeout=10)
    assert call["channel"] == "voice"


def test_an_smsc_receipt_saying_undeliverable_starts_the_next_step_at_once(
    world: World, vonage: VonageApi
) -> None:
    """+49 goes over SMPP to Net::SMPP's SMSC, which answers a destination ending in 13 with a
    deliver_sm receipt `stat:UNDELIV err:013` right after the submit_sm_resp: the worker maps
    it to the step (even when it comes first) and the voice step starts now."""
    if world.smsc is None:
        pytest.skip(unavailable() or "no SMSC")
    smsc = world.smsc
    for ending, moves_on in (("13", True), ("42", False)):
        to = "4915" + f"{random.randrange(10**7):07d}" + ending
        body = {
            "brand": "ACME",
            "channel_timeout": 300,
            "workflow": [{"channel": "sms", "to": to}, {"channel": "voice", "to": to}],
        }
        resp = vonage.start(body)
        assert resp.status_code == 202, resp.text
        rid = resp.json()["request_id"]
        submit = wait_until(
            lambda to=to: [p for p in smsc.log("submit_sm") if p.get("dest") == to],
            timeout=15,
            what="the submit_sm",
        )[0]
        assert submit["data_coding"] == 0 and submit["registered_delivery"] == 1
        if moves_on:
            call = vonage.wait_message("+" + to, rid, "voice", timeout=10)
            assert call["channel"] == "voice"
        else:
            never(lambda to=to: vonage.messages("+" + to), within=1.5, what="a call after DELIVRD")

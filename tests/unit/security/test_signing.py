"""Pure helpers around webhooks and destinations: signatures, retry delays, SSRF guard, numbers."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
import uuid

import jwt
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orchestrator.phone import parse_msisdn
from orchestrator.security.netguard import is_forbidden_address
from orchestrator.security.signing import (
    standard_webhook_headers,
    standard_webhook_signature,
    vonage_authorization,
)
from workers.webhooks import retry_delay

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
BODY = json.dumps(
    {"request_id": str(uuid.uuid4()), "type": "summary", "status": "completed"},
    separators=(",", ":"),
).encode()


# ---- Standard Webhooks ----------------------------------------------------------------------


def test_standard_webhook_headers_verify_with_the_library() -> None:
    now = int(time.time())
    headers = standard_webhook_headers(WEBHOOK_SECRET, "msg_abc_1", now, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "msg_abc_1"
    assert headers["webhook-timestamp"] == str(now)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(WEBHOOK_SECRET).verify(BODY, headers) == json.loads(BODY)
    # the library computes the same signature string from the same inputs
    assert headers["webhook-signature"] == standard_webhook_signature(
        WEBHOOK_SECRET, "msg_abc_1", now, BODY
    )


def test_standard_webhook_signature_is_bound_to_body_id_and_secret() -> None:
    now = int(time.time())
    headers = standard_webhook_headers(WEBHOOK_SECRET, "msg_abc_1", now, BODY)
    wh = Webhook(WEBHOOK_SECRET)
    with pytest.raises(WebhookVerificationError):
        wh.verify(BODY.replace(b"completed", b"failed"), headers)
    with pytest.raises(WebhookVerificationError):
        wh.verify(BODY, {**headers, "webhook-id": "msg_abc_2"})
    other = "whsec_" + base64.b64encode(b"another-secret-another-secret-!!").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(BODY, headers)


def test_standard_webhook_signature_accepts_secret_without_prefix() -> None:
    now = int(time.time())
    bare = WEBHOOK_SECRET.removeprefix("whsec_")
    headers = standard_webhook_headers(bare, "msg_x_1", now, BODY)
    Webhook(WEBHOOK_SECRET).verify(BODY, headers)


# ---- Vonage signed webhooks -----------------------------------------------------------------


def test_vonage_authorization_is_hs256_with_payload_hash() -> None:
    now = int(time.time())
    header = vonage_authorization(
        BODY,
        secret="signature-secret-0123456789abcdef",
        api_key="abcd1234",
        application_id="app-1",
        now=now,
    )
    assert header.startswith("Bearer ")
    token = header.removeprefix("Bearer ")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, "signature-secret-0123456789abcdef", algorithms=["HS256"])
    assert claims["payload_hash"] == hashlib.sha256(BODY).hexdigest()
    assert claims["iss"] == "Vonage"
    assert claims["iat"] == now
    assert claims["api_key"] == "abcd1234"
    assert claims["application_id"] == "app-1"
    uuid.UUID(claims["jti"])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "wrong-secret-wrong-secret-wrong-secret", algorithms=["HS256"])


def test_vonage_authorization_is_the_token_pyjwt_would_encode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # signed with hmac directly, not PyJWT's generic encoder: the very same bytes
    jti = uuid.uuid4()
    monkeypatch.setattr(uuid, "uuid4", lambda: jti)
    header = vonage_authorization(BODY, secret="s" * 32, api_key="k", application_id="a", now=7)
    claims = {
        "iat": 7,
        "jti": str(jti),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(BODY).hexdigest(),
        "api_key": "k",
        "application_id": "a",
    }
    assert header == "Bearer " + jwt.encode(claims, "s" * 32, algorithm="HS256")


def test_vonage_authorization_jti_is_unique() -> None:
    now = int(time.time())
    tokens = [
        vonage_authorization(BODY, secret="s" * 32, api_key="k", application_id="a", now=now)
        for _ in range(5)
    ]
    jtis = {jwt.decode(t[7:], "s" * 32, algorithms=["HS256"])["jti"] for t in tokens}
    assert len(jtis) == 5


# ---- retry schedule -------------------------------------------------------------------------


SCHEDULE = [5.0, 300.0, 1800.0]


def test_retry_delay_follows_schedule_without_jitter() -> None:
    rng = random.Random(1)
    assert [retry_delay(SCHEDULE, a, 0.0, rng) for a in (1, 2, 3)] == SCHEDULE


@pytest.mark.parametrize("attempt", [4, 5, 100])
def test_retry_delay_is_none_when_exhausted(attempt: int) -> None:
    assert retry_delay(SCHEDULE, attempt, 0.2, random.Random(1)) is None


def test_retry_delay_empty_schedule_never_retries() -> None:
    assert retry_delay([], 1, 0.2, random.Random(1)) is None


@pytest.mark.parametrize("jitter", [0.2, 0.5, 1.0])
def test_retry_delay_jitter_stays_in_bounds(jitter: float) -> None:
    rng = random.Random(42)
    for attempt, base in enumerate(SCHEDULE, start=1):
        delays = [retry_delay(SCHEDULE, attempt, jitter, rng) for _ in range(500)]
        assert all(d is not None for d in delays)
        values = [d for d in delays if d is not None]
        assert min(values) >= max(0.0, base * (1 - jitter))
        assert max(values) <= base * (1 + jitter)
        # it really is jittered, on both sides of the base
        assert min(values) < base < max(values)


# ---- SSRF guard -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "::1",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "100.64.0.1",
        "fe80::1%eth0",
        "fd00::1",
        "224.0.0.1",
    ],
)
def test_forbidden_addresses(ip: str) -> None:
    assert is_forbidden_address(ip) is True


@pytest.mark.parametrize("ip", ["93.184.216.34", "8.8.8.8", "2606:4700::1", "::ffff:93.184.216.34"])
def test_public_addresses_are_allowed(ip: str) -> None:
    assert is_forbidden_address(ip) is False


# ---- phone numbers --------------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", [False, True])
def test_parse_msisdn_accepts_e164_digits(sandbox: bool) -> None:
    assert parse_msisdn("447700900000", sandbox=sandbox) == "447700900000"
    assert parse_msisdn("14155550100", sandbox=sandbox) == "14155550100"


def test_parse_msisdn_virtual_operator_numbers_only_in_sandbox() -> None:
    assert parse_msisdn("9901234562", sandbox=True) == "9901234562"
    assert parse_msisdn("9901234562", sandbox=False) is None


@pytest.mark.parametrize(
    "value",
    [
        "12345",  # too short
        "447700",  # too short
        "4477009000001234",  # 16 digits
        "44770090000a",  # letters
        "+447700900000",
        "00447700900000",  # leading 00
        "0447700900000",  # leading 0
        "44 7700 900000",
        "",
    ],
)
@pytest.mark.parametrize("sandbox", [False, True])
def test_parse_msisdn_rejects(value: str, sandbox: bool) -> None:
    assert parse_msisdn(value, sandbox=sandbox) is None

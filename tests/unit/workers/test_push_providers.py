"""Push providers without a network: message shapes, signed tokens, error mapping, routing.

APNs requests also go through httpx's MockTransport here; the real servers (a fake Google
token endpoint + FCM, an HTTP/2 APNs stand-in, redis-server for the sandbox) are in
tests/integration/test_push_provider_servers.py.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import ValidationError

from orchestrator.settings import Settings
from tests.support.push import (
    CHALLENGE,
    CLIENT_EMAIL,
    FACTOR,
    KEY_ID,
    PROJECT,
    SERVICE,
    TEAM_ID,
    TOPIC,
    apple_key,
    google_key,
    push_message,
)
from workers.providers.base import ProviderError
from workers.providers.push_apns import (
    TOKEN_MAX_AGE,
    ApnsKey,
    ApnsProvider,
    apns_id,
    apns_request,
    provider_token,
)
from workers.providers.push_apns import classify_error as apns_error
from workers.providers.push_base import PUSH_TYPE, PushDeliveryError, PushMessage, PushProvider
from workers.providers.push_fcm import (
    FCM_SCOPE,
    FcmProvider,
    ServiceAccount,
    message_body,
    token_assertion,
)
from workers.providers.push_fcm import classify_error as fcm_error
from workers.providers.push_registry import PlatformRouter, build_push_provider
from workers.providers.push_sandbox import SandboxPushProvider, outbox_record

NOW = 1_700_000_000
TOKEN_URI = "https://oauth2.example.test/token"

GOOGLE = google_key()
APPLE = apple_key()


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the message -------------------------------------------------------------------------


def test_challenge_message_carries_the_sdk_data_keys() -> None:
    m = push_message()
    assert m.body == "Approve login from Chrome on Linux?"
    assert m.data == {
        "challenge_sid": CHALLENGE,
        "factor_sid": FACTOR,
        "message": "Approve login from Chrome on Linux?",
        "type": PUSH_TYPE,
    }
    assert PUSH_TYPE == "verify_push_challenge"
    assert m.priority == "high"
    with pytest.raises(AttributeError):
        m.body = "changed"  # type: ignore[misc]


def test_delivery_error_is_a_provider_error() -> None:
    error = PushDeliveryError("gone", permanent=True, status=410, reason="Unregistered")
    assert isinstance(error, ProviderError)
    assert (error.permanent, error.status, error.reason, error.retry_after) == (
        True,
        410,
        "Unregistered",
        None,
    )


# --- FCM ---------------------------------------------------------------------------------


def test_service_account_from_the_console_json() -> None:
    account = ServiceAccount.from_json(GOOGLE.service_account(TOKEN_URI))
    assert account.client_email == CLIENT_EMAIL
    assert account.token_uri == TOKEN_URI
    assert account.project_id == PROJECT
    assert account.private_key_id == "4f1c0ffee"
    assert "PRIVATE KEY" not in repr(account)


@pytest.mark.parametrize(
    "change",
    [{"type": "authorized_user"}, {"client_email": None}, {"private_key": None}],
)
def test_service_account_rejects_other_key_files(change: dict[str, Any]) -> None:
    raw = GOOGLE.service_account(TOKEN_URI) | change
    with pytest.raises(ValueError):
        ServiceAccount.from_json(raw)


def test_token_assertion_is_rs256_signed_by_the_service_account() -> None:
    account = ServiceAccount.from_json(GOOGLE.service_account(TOKEN_URI))
    assertion = token_assertion(account, NOW)
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "RS256"
    assert header["kid"] == "4f1c0ffee"
    claims = jwt.decode(
        assertion,
        GOOGLE.public_pem,
        algorithms=["RS256"],
        audience=TOKEN_URI,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {
        "iss": CLIENT_EMAIL,
        "scope": FCM_SCOPE,
        "aud": TOKEN_URI,
        "iat": NOW,
        "exp": NOW + 3600,
    }
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            assertion,
            google_key().public_pem,
            algorithms=["RS256"],
            audience=TOKEN_URI,
            options={"verify_exp": False},
        )


def test_fcm_message_body() -> None:
    body = message_body(push_message(), NOW)
    assert body == {
        "message": {
            "token": "device-token-1",
            "notification": {"title": "Verify Demo", "body": "Approve login from Chrome on Linux?"},
            "data": {
                "challenge_sid": CHALLENGE,
                "factor_sid": FACTOR,
                "message": "Approve login from Chrome on Linux?",
                "type": "verify_push_challenge",
            },
            "android": {"priority": "HIGH", "ttl": "600s"},
            "apns": {
                "headers": {
                    "apns-priority": "10",
                    "apns-push-type": "alert",
                    "apns-expiration": str(NOW + 600),
                    "apns-collapse-id": CHALLENGE,
                },
                "payload": {"aps": {"sound": "default"}},
            },
        }
    }
    # FCM wants every data value as a string
    assert all(isinstance(v, str) for v in body["message"]["data"].values())


def fcm_status(http: int, status: str, error_code: str | None = None) -> str:
    details = (
        [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]
        if error_code
        else []
    )
    return json.dumps(
        {"error": {"code": http, "message": "...", "status": status, "details": details}}
    )


@pytest.mark.parametrize(
    ("http", "body", "permanent", "reason"),
    [
        (404, fcm_status(404, "NOT_FOUND", "UNREGISTERED"), True, "UNREGISTERED"),
        (400, fcm_status(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), True, "INVALID_ARGUMENT"),
        (400, fcm_status(400, "INVALID_ARGUMENT"), True, "INVALID_ARGUMENT"),
        (403, fcm_status(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), True, "SENDER_ID_MISMATCH"),
        (403, fcm_status(403, "PERMISSION_DENIED"), False, "PERMISSION_DENIED"),
        (401, fcm_status(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"), False, "THIRD_PARTY_AUTH_ERROR"),
        (429, fcm_status(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), False, "QUOTA_EXCEEDED"),
        (500, fcm_status(500, "INTERNAL", "INTERNAL"), False, "INTERNAL"),
        (503, fcm_status(503, "UNAVAILABLE", "UNAVAILABLE"), False, "UNAVAILABLE"),
        (502, "<html>bad gateway</html>", False, None),
    ],
)  # fmt: skip
def test_fcm_error_mapping(http: int, body: str, permanent: bool, reason: str | None) -> None:
    error = fcm_error(http, body, "30" if http == 429 else None)
    assert (error.permanent, error.status, error.reason) == (permanent, http, reason)
    assert error.retry_after == (30.0 if http == 429 else None)


def test_fcm_needs_a_project() -> None:
    raw = GOOGLE.service_account(TOKEN_URI)
    del raw["project_id"]
    with pytest.raises(ValueError, match="fcm_project_id"):
        FcmProvider(ServiceAccount.from_json(raw))
    assert FcmProvider(ServiceAccount.from_json(raw), project_id="other") is not None


@pytest.mark.parametrize(("platform", "token"), [("apn", "abc"), ("fcm", None), ("fcm", "")])
async def test_fcm_refuses_what_it_cannot_reach(platform: Any, token: str | None) -> None:
    provider = FcmProvider(ServiceAccount.from_json(GOOGLE.service_account(TOKEN_URI)))
    with pytest.raises(PushDeliveryError) as caught:
        await provider.send(push_message(platform, token))
    assert caught.value.permanent
    await provider.close()


async def test_fcm_drops_none_devices_without_a_request() -> None:
    # the token URI is unroutable: any request would fail the test
    provider = FcmProvider(ServiceAccount.from_json(GOOGLE.service_account("http://0.0.0.0:9/")))
    await provider.send(push_message("none", None))
    await provider.close()


# --- APNs --------------------------------------------------------------------------------


def apple() -> ApnsKey:
    return ApnsKey(key_id=KEY_ID, team_id=TEAM_ID, private_key=APPLE.pem)


def test_apns_key_file(tmp_path: Path) -> None:
    key = ApnsKey.load(APPLE.write(tmp_path), KEY_ID, TEAM_ID)
    assert key.key_id == KEY_ID
    assert "PRIVATE" not in repr(key)
    rsa_file = tmp_path / "rsa.p8"
    rsa_file.write_text(GOOGLE.service_account(TOKEN_URI)["private_key"], encoding="ascii")
    with pytest.raises(ValueError, match="P-256"):
        ApnsKey.load(rsa_file, KEY_ID, TEAM_ID)


def test_provider_token_is_es256_with_exactly_alg_and_kid() -> None:
    token = provider_token(apple(), NOW)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": KEY_ID}
    claims = jwt.decode(
        token, APPLE.public_pem, algorithms=["ES256"], options={"verify_iat": False}
    )
    assert claims == {"iss": TEAM_ID, "iat": NOW}


def test_apns_request() -> None:
    m = push_message("apn", "a1b2c3")
    path, headers, body = apns_request(m, TOPIC, NOW)
    assert path == "/3/device/a1b2c3"
    assert headers == {
        "apns-topic": TOPIC,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-expiration": str(NOW + 600),
        "apns-id": apns_id(m.id),
        "apns-collapse-id": CHALLENGE,
        "content-type": "application/json",
    }
    assert json.loads(body) == {
        "aps": {
            "alert": {"title": "Verify Demo", "body": "Approve login from Chrome on Linux?"},
            "sound": "default",
        },
        "challenge_sid": CHALLENGE,
        "factor_sid": FACTOR,
        "message": "Approve login from Chrome on Linux?",
        "type": "verify_push_challenge",
    }


def test_apns_id_is_a_stable_canonical_uuid() -> None:
    first = apns_id("YC1:0")
    assert first == apns_id("YC1:0") != apns_id("YC1:1")
    assert str(uuid.UUID(first)) == first  # lowercase 8-4-4-4-12


@pytest.mark.parametrize(
    ("http", "reason", "permanent"),
    [
        (400, "BadDeviceToken", True),
        (400, "DeviceTokenNotForTopic", True),
        (410, "Unregistered", True),
        (410, "ExpiredToken", True),
        (413, "PayloadTooLarge", True),
        (405, "MethodNotAllowed", True),
        (403, "InvalidProviderToken", False),
        (429, "TooManyRequests", False),
        (500, "InternalServerError", False),
        (503, "ServiceUnavailable", False),
    ],
)
def test_apns_error_mapping(http: int, reason: str, permanent: bool) -> None:
    error = apns_error(http, json.dumps({"reason": reason}), "5" if http == 503 else None)
    assert (error.permanent, error.status, error.reason) == (permanent, http, reason)
    assert error.retry_after == (5.0 if http == 503 else None)
    assert apns_error(502, "not json").reason is None


class FakeApns:
    """An httpx MockTransport handler: checks each request like APNs would, then answers."""

    def __init__(self, answers: list[tuple[int, str]] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answers = answers or []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        scheme, token = request.headers["authorization"].split(" ", 1)
        assert scheme == "bearer"
        jwt.decode(token, APPLE.public_pem, algorithms=["ES256"], options={"verify_iat": False})
        if self.answers:
            status, reason = self.answers.pop(0)
            return httpx.Response(status, json={"reason": reason})
        return httpx.Response(200, headers={"apns-id": request.headers["apns-id"]})

    def tokens(self) -> list[str]:
        return [r.headers["authorization"].split(" ", 1)[1] for r in self.requests]


def apns_provider(fake: FakeApns, clock: Clock) -> ApnsProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    return ApnsProvider(apple(), TOPIC, base_url="https://apns.test", client=client, clock=clock)


async def test_apns_reuses_its_token_for_up_to_50_minutes() -> None:
    fake, clock = FakeApns(), Clock()
    provider = apns_provider(fake, clock)
    await provider.send(push_message("apn", "t1", id="YC1:0"))
    clock.now += TOKEN_MAX_AGE - 1
    await provider.send(push_message("apn", "t2", id="YC2:0"))
    clock.now += 1
    await provider.send(push_message("apn", "t3", id="YC3:0"))
    tokens = fake.tokens()
    assert tokens[0] == tokens[1] != tokens[2]
    assert jwt.decode(tokens[2], options={"verify_signature": False})["iat"] == NOW + TOKEN_MAX_AGE
    request = fake.requests[0]
    assert str(request.url) == "https://apns.test/3/device/t1"
    assert request.method == "POST"
    assert request.headers["apns-topic"] == TOPIC
    assert request.headers["apns-id"] == apns_id("YC1:0")
    await provider.close()


async def test_apns_retries_once_with_a_new_token_when_apple_says_expired() -> None:
    fake, clock = FakeApns([(403, "ExpiredProviderToken")]), Clock()
    provider = apns_provider(fake, clock)
    clock.now += 60
    await provider.send(push_message("apn", "t1"))
    assert len(fake.requests) == 2
    fake.answers = [(403, "ExpiredProviderToken"), (403, "ExpiredProviderToken")]
    with pytest.raises(PushDeliveryError) as caught:
        await provider.send(push_message("apn", "t1"))
    assert caught.value.reason == "ExpiredProviderToken"
    assert not caught.value.permanent
    await provider.close()


async def test_apns_maps_a_dead_token_to_permanent() -> None:
    fake = FakeApns([(410, "Unregistered")])
    provider = apns_provider(fake, Clock())
    with pytest.raises(PushDeliveryError) as caught:
        await provider.send(push_message("apn", "gone"))
    assert (caught.value.permanent, caught.value.status) == (True, 410)
    await provider.close()


async def test_apns_transport_failure_is_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    provider = ApnsProvider(apple(), TOPIC, client=client, clock=Clock())
    with pytest.raises(PushDeliveryError) as caught:
        await provider.send(push_message("apn", "t1"))
    assert not caught.value.permanent
    await provider.close()


async def test_apns_refuses_other_platforms_and_drops_none() -> None:
    fake = FakeApns()
    provider = apns_provider(fake, Clock())
    with pytest.raises(PushDeliveryError) as caught:
        await provider.send(push_message("fcm", "t1"))
    assert caught.value.permanent
    await provider.send(push_message("none", None))
    assert fake.requests == []
    await provider.close()


# --- routing, the sandbox record, the registry -------------------------------------------


class Recorder(PushProvider):
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[PushMessage] = []
        self.closed = False

    async def send(self, message: PushMessage) -> None:
        self.sent.append(message)

    async def close(self) -> None:
        self.closed = True


async def test_router_sends_by_platform() -> None:
    fcm, apn = Recorder("fcm"), Recorder("apns")
    router = PlatformRouter(fcm=fcm, apn=apn)
    await router.send(push_message("fcm", "f"))
    await router.send(push_message("apn", "a"))
    await router.send(push_message("none", None))
    assert [m.notification_token for m in fcm.sent] == ["f"]
    assert [m.notification_token for m in apn.sent] == ["a"]
    await router.close()
    assert fcm.closed and apn.closed
    with pytest.raises(PushDeliveryError) as caught:
        await PlatformRouter(fcm=fcm, apn=None).send(push_message("apn", "a"))
    assert caught.value.permanent


def test_sandbox_outbox_record() -> None:
    record = outbox_record(push_message(), "2024-01-01T00:00:00.000Z")
    assert record == {
        "id": CHALLENGE + ":0",
        "channel": "push",
        "to": FACTOR,
        "from": SERVICE,
        "subject": "Verify Demo",
        "text": "Approve login from Chrome on Linux?",
        "extra": push_message().data,
        "notification_platform": "fcm",
        "challenge_sid": CHALLENGE,
        "ttl": 600,
        "priority": "high",
        "created_at": "2024-01-01T00:00:00.000Z",
    }


def settings(**values: Any) -> Settings:
    return Settings(**values)


def test_registry_sandbox_only_while_the_sandbox_is_on() -> None:
    redis: Any = object()
    assert isinstance(build_push_provider(settings(sandbox=True), redis), SandboxPushProvider)
    assert build_push_provider(settings(sandbox=False), redis) is None
    assert settings().push_provider == "sandbox"


async def test_registry_builds_fcm_apns_and_the_router(tmp_path: Path) -> None:
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps(GOOGLE.service_account(TOKEN_URI)))
    configured = {
        "fcm_service_account_file": key_file,
        "apns_key_file": APPLE.write(tmp_path),
        "apns_key_id": KEY_ID,
        "apns_team_id": TEAM_ID,
        "apns_topic": TOPIC,
    }
    redis: Any = object()
    fcm = build_push_provider(settings(push_provider="fcm", **configured), redis)
    apns = build_push_provider(settings(push_provider="apns", **configured), redis)
    both = build_push_provider(settings(push_provider="fcm+apns", **configured), redis)
    assert isinstance(fcm, FcmProvider)
    assert isinstance(apns, ApnsProvider)
    assert isinstance(both, PlatformRouter)
    for provider in (fcm, apns, both):
        await provider.close()


@pytest.mark.parametrize("name", ["fcm", "apns", "fcm+apns"])
def test_registry_names_the_missing_settings(name: str) -> None:
    with pytest.raises(ValueError, match="needs"):
        build_push_provider(settings(push_provider=name), object())  # type: ignore[arg-type]


def test_unknown_push_provider_is_a_settings_error() -> None:
    with pytest.raises(ValidationError):
        settings(push_provider="pigeon")


def test_push_provider_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERIFY_PUSH_PROVIDER", "fcm+apns")
    monkeypatch.setenv("VERIFY_APNS_BASE_URL", "https://api.sandbox.push.apple.com")
    s = Settings()
    assert s.push_provider == "fcm+apns"
    assert s.apns_base_url == "https://api.sandbox.push.apple.com"
    assert s.fcm_base_url == "https://fcm.googleapis.com"

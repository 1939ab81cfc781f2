"""Push providers against real local servers on 127.0.0.1.

- FCM: an aiohttp server plays Google's token endpoint (verifies the RS256 assertion with the
  service account's public key) and FCM's messages:send (checks the bearer token and body).
- APNs: hypercorn serves an ASGI stand-in over HTTP/2, cleartext with prior knowledge and over
  TLS with ALPN; it verifies the ES256 provider token and the request Apple documents.
- Sandbox: a real redis-server and the outbox the sandbox API reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import jwt
import pytest
from aiohttp import web
from hypercorn.asyncio import serve
from hypercorn.config import Config
from redis.asyncio import Redis

from orchestrator.engine import outbox
from tests.support.processes import RedisServer, free_port, make_tls_cert
from tests.support.push import (
    ACCOUNT,
    CHALLENGE,
    CLIENT_EMAIL,
    FACTOR,
    KEY_ID,
    PROJECT,
    TEAM_ID,
    TOPIC,
    apple_key,
    google_key,
    push_message,
)
from workers.providers.push_apns import TOKEN_MAX_AGE, ApnsKey, ApnsProvider, apns_id
from workers.providers.push_base import PushDeliveryError, PushProvider
from workers.providers.push_fcm import FCM_SCOPE, JWT_BEARER_GRANT, FcmProvider, ServiceAccount
from workers.providers.push_sandbox import SandboxPushProvider

GOOGLE = google_key()
APPLE = apple_key()


Closing = Callable[[Any], Any]


@pytest.fixture
async def closing() -> AsyncIterator[Closing]:
    """Wrap each provider a test opens, so it is closed even when the test fails."""
    opened: list[PushProvider] = []

    def track(provider: Any) -> Any:
        opened.append(provider)
        return provider

    yield track
    for provider in opened:
        await provider.close()


class Clock:
    """A clock the test moves. It starts `behind` seconds in the past, so that after the test
    moves it forward the tokens it signs are still not "issued in the future" to the fakes,
    which check iat and exp against the real time."""

    def __init__(self, behind: float = 0) -> None:
        self.now = time.time() - behind

    def __call__(self) -> float:
        return self.now


# --- FCM and its token endpoint ----------------------------------------------------------


def fcm_error(http: int, status: str, code: str | None) -> web.Response:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]
    body = {"error": {"code": http, "message": status, "status": status, "details": details}}
    headers = {"Retry-After": "7"} if http in (429, 503) else {}
    return web.json_response(body, status=http, headers=headers)


class FakeGoogle:
    """Token endpoint + FCM v1. Device tokens named like errors get those errors."""

    ERRORS: ClassVar[dict[str, tuple[Any, ...]]] = {
        "dead-token": (404, "NOT_FOUND", "UNREGISTERED"),
        "bad-token": (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
        "busy-token": (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
        "down-token": (503, "UNAVAILABLE", "UNAVAILABLE"),
    }

    def __init__(self) -> None:
        self.url = ""
        self.token_requests: list[dict[str, str]] = []
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.sent: list[dict[str, Any]] = []
        self.token_status = 200

    @property
    def token_uri(self) -> str:
        return self.url + "/token"

    async def token(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-www-form-urlencoded"
        form = dict(await request.post())
        self.token_requests.append({k: str(v) for k, v in form.items()})
        if form.get("grant_type") != JWT_BEARER_GRANT:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(
                str(form["assertion"]),
                GOOGLE.public_pem,
                algorithms=["RS256"],
                audience=self.token_uri,
                issuer=CLIENT_EMAIL,
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except jwt.InvalidTokenError as exc:
            return web.json_response(
                {"error": "invalid_grant", "error_description": str(exc)}, status=400
            )
        assert claims["scope"] == FCM_SCOPE
        assert 0 < claims["exp"] - claims["iat"] <= 3600
        access = f"ya29.test-{len(self.issued)}"
        self.issued.append(access)
        return web.json_response(
            {"access_token": access, "expires_in": 3599, "token_type": "Bearer"},
            status=self.token_status,
        )

    async def send(self, request: web.Request) -> web.Response:
        assert request.match_info["project"] == PROJECT
        scheme, _, access = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or access not in self.issued or access in self.revoked:
            return fcm_error(401, "UNAUTHENTICATED", None)
        body = await request.json()
        message = body["message"]
        assert set(message) == {"token", "notification", "data", "android", "apns"}
        assert set(message["notification"]) == {"title", "body"}
        assert message["android"]["priority"] == "HIGH"
        assert message["android"]["ttl"].endswith("s")
        assert all(isinstance(v, str) for v in message["data"].values())
        self.sent.append({"access": access, **message})
        if message["token"] in self.ERRORS:
            return fcm_error(*self.ERRORS[message["token"]])
        return web.json_response({"name": f"projects/{PROJECT}/messages/0:{len(self.sent)}"})


@pytest.fixture
async def google() -> AsyncIterator[FakeGoogle]:
    fake = FakeGoogle()
    app = web.Application()
    app.router.add_post("/token", fake.token)
    app.router.add_post("/v1/projects/{project}/messages:send", fake.send)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


def fcm(google: FakeGoogle, clock: Clock | None = None) -> FcmProvider:
    account = ServiceAccount.from_json(GOOGLE.service_account(google.token_uri))
    if clock is None:
        return FcmProvider(account, base_url=google.url)
    return FcmProvider(account, base_url=google.url, clock=clock)


async def test_fcm_two_sends_one_token_exchange(google: FakeGoogle, closing: Closing) -> None:
    provider = closing(fcm(google))
    await provider.send(push_message("fcm", "device-a", id="YC1:0"))
    await provider.send(push_message("fcm", "device-b", id="YC2:0"))
    assert len(google.token_requests) == 1
    assert google.token_requests[0]["grant_type"] == JWT_BEARER_GRANT
    assert [m["token"] for m in google.sent] == ["device-a", "device-b"]
    assert {m["access"] for m in google.sent} == {"ya29.test-0"}
    first = google.sent[0]
    assert first["notification"] == {
        "title": "Verify Demo",
        "body": "Approve login from Chrome on Linux?",
    }
    assert first["data"]["type"] == "verify_push_challenge"
    assert first["data"]["challenge_sid"] == CHALLENGE
    assert first["data"]["factor_sid"] == FACTOR
    assert first["android"] == {"priority": "HIGH", "ttl": "600s"}


async def test_fcm_concurrent_sends_share_one_token_exchange(
    google: FakeGoogle, closing: Closing
) -> None:
    provider = closing(fcm(google))
    await asyncio.gather(
        *(provider.send(push_message("fcm", f"d{i}", id=f"YC{i}:0")) for i in range(5))
    )
    assert len(google.token_requests) == 1
    assert len(google.sent) == 5


async def test_fcm_exchanges_again_shortly_before_expiry(
    google: FakeGoogle, closing: Closing
) -> None:
    clock = Clock(behind=3400)
    provider = closing(fcm(google, clock))
    await provider.send(push_message("fcm", "d1"))
    clock.now += 3599 - 301  # still more than the refresh margin left
    await provider.send(push_message("fcm", "d2"))
    assert len(google.token_requests) == 1
    clock.now += 2  # now inside the margin: a new token before the old one runs out
    await provider.send(push_message("fcm", "d3"))
    assert len(google.token_requests) == 2
    assert [m["access"] for m in google.sent] == ["ya29.test-0", "ya29.test-0", "ya29.test-1"]


async def test_fcm_revoked_token_is_replaced_once(google: FakeGoogle, closing: Closing) -> None:
    provider = closing(fcm(google))
    await provider.send(push_message("fcm", "d1"))
    google.revoked.add("ya29.test-0")
    await provider.send(push_message("fcm", "d2"))
    assert [m["access"] for m in google.sent] == ["ya29.test-0", "ya29.test-1"]
    google.revoked.add("ya29.test-1")
    google.revoked.add("ya29.test-2")
    with pytest.raises(PushDeliveryError) as caught:
        await provider.send(push_message("fcm", "d3"))  # a second 401 is not retried again
    assert (caught.value.status, caught.value.permanent) == (401, False)


@pytest.mark.parametrize(
    ("device", "status", "reason", "permanent", "retry_after"),
    [
        ("dead-token", 404, "UNREGISTERED", True, None),
        ("bad-token", 400, "INVALID_ARGUMENT", True, None),
        ("busy-token", 429, "QUOTA_EXCEEDED", False, 7.0),
        ("down-token", 503, "UNAVAILABLE", False, 7.0),
    ],
)
async def test_fcm_errors(
    google: FakeGoogle,
    device: str,
    status: int,
    reason: str,
    permanent: bool,
    retry_after: float | None,
    closing: Closing,
) -> None:
    provider = closing(fcm(google))
    with pytest.raises(PushDeliveryError) as caught:
        await provider.send(push_message("fcm", device))
    error = caught.value
    assert (error.status, error.reason, error.permanent, error.retry_after) == (
        status,
        reason,
        permanent,
        retry_after,
    )


async def test_fcm_assertion_signed_by_another_key_gets_no_token(
    google: FakeGoogle, closing: Closing
) -> None:
    impostor = ServiceAccount.from_json(google_key().service_account(google.token_uri))
    provider = closing(FcmProvider(impostor, base_url=google.url))
    with pytest.raises(PushDeliveryError) as caught:
        await provider.send(push_message("fcm", "d1"))
    assert (caught.value.reason, caught.value.status, caught.value.permanent) == (
        "TOKEN_EXCHANGE",
        400,
        False,
    )
    assert google.issued == [] and google.sent == []


async def test_fcm_unreachable_is_transient(closing: Closing) -> None:
    port = free_port()  # nothing listens there
    account = ServiceAccount.from_json(GOOGLE.service_account(f"http://127.0.0.1:{port}/token"))
    provider = closing(FcmProvider(account, base_url=f"http://127.0.0.1:{port}", timeout=2))
    with pytest.raises(PushDeliveryError) as caught:
        await provider.send(push_message("fcm", "d1"))
    assert not caught.value.permanent


# --- APNs over HTTP/2 --------------------------------------------------------------------


class FakeApns:
    """An ASGI app that answers like APNs. Device tokens named like errors get those errors."""

    ERRORS: ClassVar[dict[str, tuple[Any, ...]]] = {
        "unregistered": (410, "Unregistered"),
        "bad-device": (400, "BadDeviceToken"),
        "busy": (429, "TooManyRequests"),
        "down": (503, "ServiceUnavailable"),
    }

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.expire_next = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        status, answer = self.answer(scope, headers, body)
        out = [(b"apns-id", headers.get("apns-id", "").encode())]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": answer})

    def answer(
        self, scope: dict[str, Any], headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        assert scope["http_version"] == "2", "APNs speaks HTTP/2 only"
        assert scope["method"] == "POST"
        assert scope["path"].startswith("/3/device/")
        device = scope["path"].removeprefix("/3/device/")
        scheme, _, token = headers["authorization"].partition(" ")
        assert scheme == "bearer"
        assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": KEY_ID}
        claims = jwt.decode(token, APPLE.public_pem, algorithms=["ES256"], issuer=TEAM_ID)
        payload = json.loads(body)
        self.requests.append({"device": device, "headers": headers, "claims": claims, "token": token, "payload": payload})  # fmt: skip
        if self.expire_next:
            self.expire_next -= 1
            return 403, b'{"reason":"ExpiredProviderToken"}'
        if device in self.ERRORS:
            status, reason = self.ERRORS[device]
            return status, json.dumps({"reason": reason, "timestamp": 1700000000000}).encode()
        return 200, b""


@contextlib.asynccontextmanager
async def hypercorn_server(app: Any, tls: tuple[Path, Path] | None = None) -> AsyncIterator[str]:
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    if tls is not None:
        config.certfile, config.keyfile = str(tls[0]), str(tls[1])
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:  # poll until the server accepts, with a deadline
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            break
        except OSError:
            assert loop.time() < deadline, "hypercorn did not start"
            await asyncio.sleep(0.02)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        stop.set()
        await task


@pytest.fixture
async def apns() -> AsyncIterator[tuple[FakeApns, str]]:
    fake = FakeApns()
    async with hypercorn_server(fake) as url:
        yield fake, url


def apple() -> ApnsKey:
    return ApnsKey(key_id=KEY_ID, team_id=TEAM_ID, private_key=APPLE.pem)


async def test_apns_over_h2c(apns: tuple[FakeApns, str], closing: Closing) -> None:
    fake, url = apns
    clock = Clock(behind=TOKEN_MAX_AGE + 60)
    provider = closing(ApnsProvider(apple(), TOPIC, base_url=url, clock=clock))
    await provider.send(push_message("apn", "a1b2", id="YC1:0"))
    await provider.send(push_message("apn", "c3d4", id="YC2:0"))
    clock.now += TOKEN_MAX_AGE
    await provider.send(push_message("apn", "e5f6", id="YC3:0"))
    assert [r["device"] for r in fake.requests] == ["a1b2", "c3d4", "e5f6"]
    tokens = [r["token"] for r in fake.requests]
    assert tokens[0] == tokens[1] != tokens[2]  # one provider token until it is 50 min old
    first = fake.requests[0]
    headers = first["headers"]
    assert headers["apns-topic"] == TOPIC
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert int(headers["apns-expiration"]) == int(first["claims"]["iat"]) + 600
    assert headers["apns-id"] == apns_id("YC1:0")
    assert first["payload"]["aps"] == {
        "alert": {"title": "Verify Demo", "body": "Approve login from Chrome on Linux?"},
        "sound": "default",
    }
    assert first["payload"]["type"] == "verify_push_challenge"
    assert first["payload"]["challenge_sid"] == CHALLENGE


@pytest.mark.parametrize(
    ("device", "status", "reason", "permanent"),
    [
        ("unregistered", 410, "Unregistered", True),
        ("bad-device", 400, "BadDeviceToken", True),
        ("busy", 429, "TooManyRequests", False),
        ("down", 503, "ServiceUnavailable", False),
    ],
)
async def test_apns_errors(
    apns: tuple[FakeApns, str],
    device: str,
    status: int,
    reason: str,
    permanent: bool,
    closing: Closing,
) -> None:
    _, url = apns
    provider = closing(ApnsProvider(apple(), TOPIC, base_url=url))
    with pytest.raises(PushDeliveryError) as caught:
        await provider.send(push_message("apn", device))
    assert (caught.value.status, caught.value.reason, caught.value.permanent) == (
        status,
        reason,
        permanent,
    )


async def test_apns_expired_provider_token_is_replaced(
    apns: tuple[FakeApns, str], closing: Closing
) -> None:
    fake, url = apns
    fake.expire_next = 1
    provider = closing(ApnsProvider(apple(), TOPIC, base_url=url))
    await provider.send(push_message("apn", "a1b2"))
    assert len(fake.requests) == 2


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    yield make_tls_cert(tmp_path)


async def test_apns_over_tls_negotiates_h2(tls: tuple[Path, Path]) -> None:
    fake = FakeApns()
    context = ssl.create_default_context(cafile=str(tls[0]))
    async with hypercorn_server(fake, tls) as url:
        client = httpx.AsyncClient(http1=False, http2=True, verify=context)
        provider = ApnsProvider(apple(), TOPIC, base_url=url, client=client)
        await provider.send(push_message("apn", "a1b2"))
        await provider.close()
        await client.aclose()
    assert [r["device"] for r in fake.requests] == ["a1b2"]


# --- the sandbox outbox ------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("push-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


async def test_sandbox_delivers_once_per_message_id(redis: Redis) -> None:
    provider = SandboxPushProvider(redis)
    await provider.send(push_message("fcm", "d1", id="YC1:0"))
    await provider.send(push_message("fcm", "d1", id="YC1:0"))  # a retried job
    await provider.send(push_message("apn", "d1", id="YC1:1", message="Second notification"))
    found = await outbox.list_messages(redis, ACCOUNT, FACTOR)
    assert [m["id"] for m in found] == ["YC1:1", "YC1:0"]  # newest first, the retry dropped
    record = found[1]
    assert record["channel"] == "push"
    assert record["to"] == FACTOR
    assert record["text"] == "Approve login from Chrome on Linux?"
    assert record["extra"] == {
        "challenge_sid": CHALLENGE,
        "factor_sid": FACTOR,
        "message": "Approve login from Chrome on Linux?",
        "type": "verify_push_challenge",
    }
    assert await outbox.list_messages(redis, "AC" + "0" * 32, FACTOR) == []


async def test_sandbox_skips_devices_without_push(redis: Redis) -> None:
    await SandboxPushProvider(redis).send(push_message("none", None))
    assert await outbox.list_messages(redis, ACCOUNT, FACTOR) == []

"""SSRF: status URLs that resolve to loopback, private, link-local (cloud metadata) or otherwise
non-public addresses are refused by `apps create` / `apps update` unless
VERIFY_WEBHOOK_ALLOW_PRIVATE; and a name that resolved to a public address when the URL was
registered but to a private one when a webhook is sent (DNS rebinding) is refused at send time,
by the resolver the worker's HTTP client dials through.

(tests/integration/test_webhooks.py already covers `apps create` with 127.0.0.1 and
169.254.169.254; tests/integration/test_twilio_webhooks.py the Twilio webhook resources.)
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import fakeredis
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from orchestrator import constants
from orchestrator.security.netguard import UnsafeURL, check_status_url
from orchestrator.tenants import apps
from tests.support.client import TestApp
from tests.support.processes import CLI, Stack
from tests.support.receiver import WebhookReceiver
from workers.webhooks import GuardedResolver, attempt_delivery

REFUSED_ON_CREATE = [
    "http://10.0.0.1/hook",
    "http://[::1]/hook",
    "http://localhost/hook",  # a name that resolves to 127.0.0.1 (and ::1)
    "http://127.1/hook",  # shorthand of 127.0.0.1
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://[fd00::1]/hook",  # unique local IPv6
    "http://[fe80::1]/hook",  # link-local IPv6
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",  # multicast
]
MALFORMED = [
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "ftp://example.com/hook",
    "http://user:secret@example.com/hook",
    "/relative/hook",
]


def cli(stack: Stack, *args: str, allow_private: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "VERIFY_WEBHOOK_ALLOW_PRIVATE": "true" if allow_private else "false"}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("url", REFUSED_ON_CREATE)
def test_apps_create_refuses_non_public_status_url(stack: Stack, url: str) -> None:
    result = cli(stack, "apps", "create", "--name", f"ssrf-{uuid.uuid4().hex[:8]}",
                 "--status-url", url)  # fmt: skip
    assert result.returncode == 2, result
    assert "non-public address" in result.stderr, result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("url", MALFORMED)
def test_apps_create_refuses_urls_that_are_not_plain_http(stack: Stack, url: str) -> None:
    result = cli(stack, "apps", "create", "--name", "ssrf", "--status-url", url)
    assert result.returncode == 2, result
    assert result.stderr.startswith("error: status URL"), result.stderr


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data/", "http://localhost/"],
)
def test_apps_update_refuses_non_public_status_url(
    stack: Stack, make_app: Callable[..., TestApp], url: str
) -> None:
    app = make_app()
    result = cli(stack, "apps", "update", app.application_id, "--status-url", url)
    assert result.returncode == 2, result
    assert "non-public address" in result.stderr
    listed = json.loads(cli(stack, "apps", "list").stdout)
    mine = next(a for a in listed if a["application_id"] == app.application_id)
    assert mine["status_url"] != url


def test_private_status_url_is_accepted_when_allowed(stack: Stack, tmp_path: Path) -> None:
    result = cli(stack, "apps", "create", "--name", "lab", "--status-url", "http://10.0.0.1/hook",
                 "--private-key-out", str(tmp_path / "lab.key"), allow_private=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status_url"] == "http://10.0.0.1/hook"


# ---- DNS rebinding -------------------------------------------------------------------------------


class FlippingResolver(AbstractResolver):
    """A fake DNS: answers each lookup with the next address of `answers` (the last repeats)."""

    def __init__(self, answers: list[str], port: int) -> None:
        self.answers = answers
        self.port = port
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: Any = socket.AF_INET
    ) -> list[ResolveResult]:
        ip = self.answers[min(len(self.lookups), len(self.answers) - 1)]
        self.lookups.append(host)
        return [
            ResolveResult(hostname=host, host=ip, port=self.port, family=socket.AF_INET,
                          proto=0, flags=socket.AI_NUMERICHOST)
        ]  # fmt: skip

    async def close(self) -> None:
        return None


def guarded(inner: AbstractResolver, allow_private: bool) -> GuardedResolver:
    resolver = GuardedResolver(allow_private)
    resolver._inner = inner  # type: ignore[assignment]  # the fake DNS behind the guard
    return resolver


def test_guarded_resolver_refuses_a_name_that_rebinds_to_loopback() -> None:
    async def go() -> None:
        resolver = guarded(FlippingResolver(["93.184.216.34", "127.0.0.1"], 80), False)
        first = await resolver.resolve("rebind.example", 80)
        assert [r["host"] for r in first] == ["93.184.216.34"]
        with pytest.raises(OSError, match="non-public"):
            await resolver.resolve("rebind.example", 80)
        # with private addresses allowed, the same answer passes
        lab = guarded(FlippingResolver(["127.0.0.1"], 80), True)
        assert [r["host"] for r in await lab.resolve("rebind.example", 80)] == ["127.0.0.1"]

    asyncio.run(go())


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1"])
def test_guarded_resolver_refuses_every_non_public_answer(address: str) -> None:
    async def go() -> None:
        resolver = guarded(FlippingResolver([address], 80), False)
        with pytest.raises(OSError):
            await resolver.resolve("rebind.example", 80)

    asyncio.run(go())


def test_rebinding_between_registration_and_delivery_is_refused_at_send_time(
    receiver: WebhookReceiver,
) -> None:
    """`apps create` sees a public address; when the webhook goes out the name points at a
    local service (here a real receiver on 127.0.0.1): the worker's client never connects."""
    url = f"http://rebind.example:{receiver.port}/rebind/{uuid.uuid4().hex}"
    path = url.split(str(receiver.port), 1)[1]

    async def go(allow_private: bool) -> str:
        loop = asyncio.get_running_loop()

        async def public_dns(host: str, port: int, **kw: Any) -> list[Any]:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

        # registration time: the name resolves to a public address, so the URL is accepted
        loop.getaddrinfo = public_dns  # type: ignore[method-assign]
        await check_status_url(url, allow_private=False)

        redis = fakeredis.FakeAsyncRedis()
        created = await apps.create_app(redis, "rebind", url, "2026-01-01T00:00:00.000Z")
        message_id = f"msg_{uuid.uuid4().hex}_1"
        await redis.hset(constants.WEBHOOK_PREFIX + message_id, mapping={
            "tenant": created.app.id, "body": json.dumps({"request_id": message_id}),
            "kind": "summary", "dialect": "vonage", "created_ms": "0",
        })  # fmt: skip
        # send time: the same name now answers 127.0.0.1 (where the receiver listens)
        dns = FlippingResolver(["127.0.0.1"], receiver.port)
        connector = aiohttp.TCPConnector(resolver=guarded(dns, allow_private))
        async with aiohttp.ClientSession(connector=connector) as session:
            attempt = await attempt_delivery(
                redis,
                session,
                message_id,
                allow_private=allow_private,
                request_timeout=5,
                retention_ms=60_000,
            )
        await redis.aclose()
        assert dns.lookups == ["rebind.example"]
        return attempt.outcome

    assert asyncio.run(go(allow_private=False)) == "retry"
    assert not [d for d in receiver.deliveries if d.path == path]
    # control: the same delivery with private addresses allowed reaches the receiver
    assert asyncio.run(go(allow_private=True)) == "delivered"
    assert [d for d in receiver.deliveries if d.path == path]


def test_registration_check_refuses_a_name_resolving_to_any_private_address() -> None:
    """A name with several addresses is refused if any one of them is not public."""

    async def go() -> None:
        loop = asyncio.get_running_loop()

        async def mixed_dns(host: str, port: int, **kw: Any) -> list[Any]:
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
            ]

        loop.getaddrinfo = mixed_dns  # type: ignore[method-assign]
        with pytest.raises(UnsafeURL, match="non-public"):
            await check_status_url("https://mixed.example/hook", allow_private=False)

    asyncio.run(go())

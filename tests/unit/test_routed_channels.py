"""Which channels a start may use comes from the routes: with the sandbox off, a channel the
providers file routes for the number is accepted, one it does not route is refused at start
(Vonage 422, naming the workflow entry), and the file's routes decide by calling code."""

from __future__ import annotations

import base64
from pathlib import Path

from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpClient
from redis.asyncio import Redis

from orchestrator.cli.devredis import EmbeddedRedis
from orchestrator.http.app import create_app
from orchestrator.settings import Settings
from orchestrator.tenants import apps
from orchestrator.timefmt import iso_ms, utcnow

SID = "AC" + "0123456789abcdef" * 2
PROVIDERS = f"""
[providers.twilio-us]
kind = "twilio"
account_sid = "{SID}"
auth_token = "not-used-here"
from = "+15005550006"
base_url = "http://127.0.0.1:9"

[routes.sms]
"1" = ["twilio-us"]

[routes.voice]
default = ["twilio-us"]
"""


async def _client(
    aiohttp_client: AiohttpClient, redis_server: EmbeddedRedis, redis: Redis, tmp_path: Path
) -> tuple[TestClient, str]:
    path = tmp_path / "providers.toml"
    path.write_text(PROVIDERS)
    settings = Settings(
        redis_url=redis_server.url,
        sandbox=False,
        providers_file=path,
        secret_key="unit-tests-secret-key-0123456789abcdef",  # type: ignore[arg-type]
        fraud_enabled=False,
    )
    client = await aiohttp_client(create_app(settings))
    created = await apps.create_app(redis, "routes", "", iso_ms(utcnow()))
    raw = f"{created.app.api_key}:{created.api_secret}".encode()
    return client, "Basic " + base64.b64encode(raw).decode()


async def test_a_routed_channel_is_accepted_with_the_sandbox_off(
    aiohttp_client: AiohttpClient, redis_server: EmbeddedRedis, redis: Redis, tmp_path: Path
) -> None:
    client, auth = await _client(aiohttp_client, redis_server, redis, tmp_path)
    body = {"brand": "ACME", "workflow": [{"channel": "sms", "to": "14155550123"}]}
    resp = await client.post("/v2/verify", json=body, headers={"Authorization": auth})
    assert resp.status == 202, await resp.text()


async def test_a_number_the_route_does_not_cover_is_refused_at_start(
    aiohttp_client: AiohttpClient, redis_server: EmbeddedRedis, redis: Redis, tmp_path: Path
) -> None:
    client, auth = await _client(aiohttp_client, redis_server, redis, tmp_path)
    workflow = [
        {"channel": "sms", "to": "447700900123"},  # sms is routed for +1 only
        {"channel": "email", "to": "a@example.com"},  # no route, and the sandbox is off
    ]
    resp = await client.post(
        "/v2/verify", json={"brand": "ACME", "workflow": workflow}, headers={"Authorization": auth}
    )
    assert resp.status == 422, await resp.text()
    problem = await resp.json()
    names = [p["name"] for p in problem["invalid_parameters"]]
    assert names == ["workflow[0].channel", "workflow[1].channel"]

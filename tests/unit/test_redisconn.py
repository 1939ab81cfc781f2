"""The connection factory (orchestrator/redisconn.py): the Sentinel settings, clients found
through a real Sentinel (with and without its password), a demoted primary dropped, the WAIT
after a start's commit, a worker waiting for a primary at start, and what an unavailable Redis
becomes on the wire in each dialect: a retryable 503, not a 500."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator import constants
from orchestrator.cli.devredis import EmbeddedRedis, find_redis_server, free_port
from orchestrator.dialects.twilio import errors as twilio_errors
from orchestrator.dialects.vonage import errors as vonage_errors
from orchestrator.domain import transition
from orchestrator.domain.models import Channel, Step, Verification
from orchestrator.engine.store import Store
from orchestrator.http import errors
from orchestrator.redisconn import (
    NotReplicated,
    Replication,
    _data_kwargs,
    _FollowingConnection,
    _FollowingSSLConnection,
    arq_client,
    redis_client,
    replication_for,
    unavailable,
)
from orchestrator.settings import Settings
from tests.unit.domain.test_transition import FakeTools

MASTER = "unit-primary"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


# ---- settings ----


def test_sentinels_parse_as_host_port_pairs() -> None:
    s = Settings(redis_sentinels="10.0.0.1:26379, s2:26380,[::1]:26381", redis_sentinel_master="m")
    assert s.sentinel_addresses() == [("10.0.0.1", 26379), ("s2", 26380), ("::1", 26381)]
    assert Settings().sentinel_addresses() == []


@pytest.mark.parametrize("bad", ["s1", "s1:", ":26379", "s1:port", "s1:70000"])
def test_a_sentinel_that_is_not_host_port_is_refused_by_name(bad: str) -> None:
    with pytest.raises(ValidationError, match="is not host:port"):
        Settings(redis_sentinels=f"ok:1,{bad}", redis_sentinel_master="m")


def test_sentinels_need_a_master_name() -> None:
    with pytest.raises(ValidationError, match="redis_sentinel_master"):
        Settings(redis_sentinels="s1:26379")


def test_wait_is_off_unless_asked_for() -> None:
    assert replication_for(Settings()) is None
    asked = Settings(redis_wait_replicas=2, redis_wait_timeout_seconds=0.25)
    assert replication_for(asked) == Replication(2, 250)


def test_the_url_keeps_credentials_db_and_tls_but_not_its_address_with_sentinel() -> None:
    kwargs = _data_kwargs("rediss://app:s3cret@ignored.example:6380/2?socket_timeout=3")
    assert kwargs["connection_class"] is _FollowingSSLConnection
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("app", "s3cret", 2)
    assert kwargs["socket_timeout"] == 3.0 and "host" not in kwargs and "port" not in kwargs
    assert _data_kwargs("redis://127.0.0.1/0")["connection_class"] is _FollowingConnection
    with pytest.raises(ValueError, match="unix"):
        _data_kwargs("unix:///run/redis.sock")


# ---- what counts as "Redis unavailable" ----


@pytest.mark.parametrize(
    "exc",
    [
        RedisConnectionError("Error 111 connecting"),
        RedisTimeoutError("Timeout reading"),
        ReadOnlyError("You can't write against a read only replica."),
        # Redis 6 reports a Lua call's write on a replica so
        ResponseError("Error running script (call to f_1): @user_script:1: -READONLY You can't"),
        NotReplicated(0, 1),
    ],
)
def test_outages_are_unavailable(exc: Exception) -> None:
    assert unavailable(exc)


@pytest.mark.parametrize("exc", [ResponseError("WRONGTYPE"), RuntimeError("bug"), KeyError("x")])
def test_other_errors_are_not(exc: Exception) -> None:
    assert not unavailable(exc)


# ---- a real Sentinel in front of the module's embedded redis-server ----


def _sentinel_process(
    tmp: Path, primary: int, password: str | None
) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    conf = tmp / f"sentinel-{port}.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {primary} 1\n"
        + (f"requirepass {password}\n" if password else "")
    )
    binary = shutil.which("redis-server") or find_redis_server()
    proc = subprocess.Popen(
        [binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return port, proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.02)


@pytest.fixture(scope="module")
def sentinel(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    port, proc = _sentinel_process(tmp_path_factory.mktemp("sentinel"), redis_server.port, None)
    yield port
    proc.kill()
    proc.wait(10)


@pytest.fixture(scope="module")
def locked_sentinel(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("locked-sentinel")
    port, proc = _sentinel_process(tmp, redis_server.port, "sentinel-pass")
    yield port
    proc.kill()
    proc.wait(10)


def _via(port: int, **more: object) -> Settings:
    return Settings(
        redis_url="redis://this-host-is-not-used.invalid:1/0",
        redis_sentinels=f"127.0.0.1:{port}",
        redis_sentinel_master=MASTER,
        **more,  # type: ignore[arg-type]
    )


async def test_a_client_finds_the_primary_through_the_sentinel(redis: Redis, sentinel: int) -> None:
    client = redis_client(_via(sentinel))
    try:
        await client.set("through", "sentinel")
        assert await redis.get("through") == b"sentinel"
        # a Lua call (every commit is one) goes the same way
        assert await client.eval("return redis.call('INCR', KEYS[1])", 1, "n") == 1
    finally:
        await client.aclose()
    # closing it closed its Sentinel connections too
    sentinels = client.connection_pool.sentinel_manager.sentinels  # type: ignore[attr-defined]
    connections = [c for s in sentinels for c in s.connection_pool._available_connections]
    assert connections and not any(c.is_connected for c in connections)


async def test_the_arq_pool_goes_through_the_sentinel_too(redis: Redis, sentinel: int) -> None:
    pool = arq_client(_via(sentinel), job_serializer=lambda v: b"{}")
    try:
        job = await pool.enqueue_job("send_step", _job_id="j1")
        assert job is not None
        assert await redis.zscore("arq:queue", "j1") is not None
    finally:
        await pool.aclose()


async def test_the_sentinel_password_is_the_sentinels_own(
    redis: Redis, locked_sentinel: int
) -> None:
    client = redis_client(_via(locked_sentinel, redis_sentinel_password="sentinel-pass"))
    try:
        assert await client.ping()
    finally:
        await client.aclose()
    refused = redis_client(_via(locked_sentinel))
    try:
        with pytest.raises(RedisConnectionError) as caught:
            await refused.ping()
        assert unavailable(caught.value)
        assert "sentinel-pass" not in str(caught.value)
    finally:
        await refused.aclose()


async def test_no_sentinel_reachable_is_unavailable() -> None:
    client = redis_client(_via(free_port()))
    try:
        with pytest.raises(RedisConnectionError) as caught:
            await client.get("x")
        assert unavailable(caught.value)
    finally:
        await client.aclose()


# ---- WAIT after a start's commit ----


async def test_wait_without_enough_replicas_raises_not_replicated(redis: Redis) -> None:
    await Replication(0, 10).confirm(redis)  # nothing asked: nothing to wait for
    with pytest.raises(NotReplicated) as caught:
        await Replication(1, 20).confirm(redis)
    assert (caught.value.acknowledged, caught.value.wanted) == (0, 1)


async def test_a_start_not_on_enough_replicas_is_refused_but_stays_committed(redis: Redis) -> None:
    store = Store(redis, lambda v, e: None, 3600, replication=Replication(1, 20))
    v = Verification(
        request_id="6a1f3c2e-0b7d-4d59-9a43-1c2b3d4e5f61",
        tenant="app-1",
        brand="ACME",
        locale="en-gb",
        channel_timeout=180,
        code_length=4,
        steps=[Step(channel=Channel.SMS, to="447700900124")],
        created_at=NOW,
    )
    with pytest.raises(NotReplicated):
        await store.create(transition.begin(v, NOW, FakeTools()), NOW)
    # on the primary all the same: its SMS goes out unless the primary dies before replicating
    assert await redis.exists(constants.VERIFICATION_PREFIX + v.request_id) == 1
    # a single-connection client was used for commit + WAIT and handed back
    assert not redis.connection_pool._in_use_connections  # type: ignore[attr-defined]


# ---- on the wire: a retryable 503 in each dialect's shape ----

Raiser = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _raising(exc: Exception) -> Raiser:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise exc

    return handler


async def _client_for(
    aiohttp_client: Callable[..., Awaitable[TestClient]], exc: Exception
) -> TestClient:  # type: ignore[type-arg]
    def choose(request: web.Request) -> errors.ErrorHandler:
        return twilio_errors.handle if twilio_errors.owns(request.path) else vonage_errors.handle

    app = web.Application(middlewares=[errors.middleware_for(choose)])
    app.router.add_post("/v2/verify", _raising(exc))
    app.router.add_post("/v2/Services/VA1/Verifications", _raising(exc))
    return await aiohttp_client(app)


OUTAGES = [
    RedisConnectionError("Error 111 connecting to 127.0.0.1:6379."),
    NotReplicated(0, 1),
    ResponseError("Error running script: -READONLY You can't write against a read only replica."),
]


@pytest.mark.parametrize("exc", OUTAGES, ids=lambda e: type(e).__name__)
async def test_vonage_answers_an_outage_with_a_retryable_problem(aiohttp_client, exc) -> None:  # type: ignore[no-untyped-def]
    client = await _client_for(aiohttp_client, exc)
    resp = await client.post("/v2/verify")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert resp.content_type == "application/problem+json"
    body = await resp.json(content_type=None)
    assert body["title"] == "Service Unavailable"
    assert body["type"].endswith("service-unavailable")
    assert "127.0.0.1" not in body["detail"]


@pytest.mark.parametrize("exc", OUTAGES, ids=lambda e: type(e).__name__)
async def test_twilio_answers_an_outage_with_a_retryable_error(aiohttp_client, exc) -> None:  # type: ignore[no-untyped-def]
    client = await _client_for(aiohttp_client, exc)
    resp = await client.post("/v2/Services/VA1/Verifications")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    body = await resp.json()
    assert (body["code"], body["status"]) == (20503, 503)
    assert body["more_info"].endswith("/20503")


async def test_a_bug_is_still_a_500(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    client = await _client_for(aiohttp_client, RuntimeError("bug"))
    assert (await client.post("/v2/verify")).status == 500
    assert (await client.post("/v2/Services/VA1/Verifications")).status == 500


# ---- a worker started while no primary is known waits for one, as arq's create_pool does ----


async def test_a_worker_started_without_a_primary_waits_then_gives_up(sentinel: int) -> None:
    from arq.worker import func

    from workers.worker import WakeableWorker

    async def noop(ctx: dict[str, object]) -> None:
        return None

    # a Sentinel that knows no such master: MasterNotFoundError on every try
    settings = Settings(redis_sentinels=f"127.0.0.1:{sentinel}", redis_sentinel_master="nobody")
    pool = arq_client(settings)
    worker = WakeableWorker(
        functions=[func(noop, name="noop")], redis_pool=pool, handle_signals=False, keep_result=0
    )
    began = time.monotonic()
    try:
        with pytest.raises(RedisConnectionError, match="No master found"):
            await worker._reachable(tries=2)
        assert time.monotonic() - began >= 1.0  # it waited before giving up
    finally:
        await pool.aclose()


# ---- a primary that the client still knows but that became a replica ----


@pytest.fixture
def demoted(redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[int]:
    """A replica of the module's server, and a Sentinel port that (wrongly, as right after a
    failover) names that replica as the primary."""
    binary = shutil.which("redis-server") or find_redis_server()
    replica_port = free_port()
    replica = subprocess.Popen(
        [binary, "--port", str(replica_port), "--bind", "127.0.0.1", "--save", "",
         "--replicaof", "127.0.0.1", str(redis_server.port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    port, sentinel = _sentinel_process(tmp_path, replica_port, None)
    yield port
    for proc in (sentinel, replica):
        proc.kill()
        proc.wait(10)


async def test_a_demoted_primary_drops_the_connection_on_a_script_write(demoted: int) -> None:
    """Redis 6 answers a Lua write on a replica with `ERR Error running script … -READONLY`,
    which redis-py does not recognise: the connection must still be dropped (so the next one
    asks the Sentinels again) and the error count as unavailable."""
    client = redis_client(_via(demoted))
    try:
        with pytest.raises(RedisConnectionError, match="now a replica") as caught:
            await client.eval("return redis.call('SET', KEYS[1], '1')", 1, "k")
        assert unavailable(caught.value)
        idle = client.connection_pool._available_connections  # type: ignore[attr-defined]
        assert idle and not any(c.is_connected for c in idle)
    finally:
        await client.aclose()

"""The hot paths made cheaper for throughput keep their meaning: job claims, app lookups, JWT keys,
phone parsing, state serialization and the outbox script, against a real redis-server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import types
import typing
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import func
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.dialects.vonage import wire as vonage
from orchestrator.domain.models import Rules, Step, Verification
from orchestrator.engine import outbox
from orchestrator.engine.codes import SecretCodeTools
from orchestrator.phone import parse_msisdn, parse_number, region_of
from orchestrator.security import auth
from orchestrator.tenants.apps import (
    APP_CACHE_MAX_AGE_S,
    create_app,
    disable_status_url,
    get_app,
    get_app_by_api_key,
    get_app_cached,
    update_app,
)
from workers.worker import WakeableWorker

QUEUE = "arq:queue"


# ---- worker job claims ---------------------------------------------------------------------


async def _noop(ctx: dict[str, Any]) -> None:
    return None


def _worker(redis: Redis, max_jobs: int = 10) -> WakeableWorker:
    pool = ArqRedis(connection_pool=redis.connection_pool)
    return WakeableWorker(
        functions=[_noop],
        redis_pool=pool,
        handle_signals=False,
        max_jobs=max_jobs,
        keep_result=0,
    )


async def _queue(redis: Redis, ids: list[str], score: int) -> None:
    await redis.zadd(QUEUE, dict.fromkeys(ids, score))


async def test_claims_only_due_jobs_not_in_progress_and_sets_the_ttl(redis: Redis) -> None:
    w = _worker(redis)
    now = timestamp_ms()
    await _queue(redis, ["due-1", "due-2", "running"], now - 1000)
    await _queue(redis, ["later"], now + 60_000)
    await redis.set(in_progress_key_prefix + "running", b"1", px=60_000)

    claimed = await w._claim(10, 100, None)

    assert sorted(claimed) == [("due-1", now - 1000), ("due-2", now - 1000)]
    ttl = await redis.pttl(in_progress_key_prefix + "due-1")
    assert 0 < ttl <= int(w.in_progress_timeout_s * 1000)
    assert await redis.exists(in_progress_key_prefix + "later") == 0
    # claimed now, so a second claim (this worker or another) gets nothing
    assert await w._claim(10, 100, None) == []


async def test_claims_at_most_the_free_slots(redis: Redis) -> None:
    w = _worker(redis)
    await _queue(redis, [f"j{i}" for i in range(5)], timestamp_ms() - 10)
    assert len(await w._claim(2, 100, None)) == 2
    assert len(await w._claim(10, 100, None)) == 3


async def test_explicit_ids_are_checked_like_arq_does(redis: Redis) -> None:
    w = _worker(redis)
    now = timestamp_ms()
    await _queue(redis, ["a"], now - 10)
    await _queue(redis, ["b"], now + 60_000)  # re-enqueued with a delay meanwhile
    claimed = await w._claim(10, 3, ["a", "b", "gone"])
    assert [job_id for job_id, _ in claimed] == ["a"]


async def test_an_expired_claim_makes_the_job_claimable_again(redis: Redis) -> None:
    """A killed worker's in-progress key expires; the job is then retried elsewhere."""
    w = _worker(redis)
    await _queue(redis, ["orphan"], timestamp_ms() - 10)
    assert len(await w._claim(10, 100, None)) == 1
    await redis.delete(in_progress_key_prefix + "orphan")  # as if its TTL ran out
    assert [j for j, _ in await _worker(redis)._claim(10, 100, None)] == ["orphan"]


async def test_concurrent_workers_never_claim_the_same_job(redis: Redis) -> None:
    ids = [f"job{i}" for i in range(300)]
    await _queue(redis, ids, timestamp_ms() - 10)
    workers = [_worker(redis, max_jobs=40) for _ in range(4)]
    claimed: list[str] = []
    for _ in range(10):
        batches = await asyncio.gather(*(w._claim(40, 1000, None) for w in workers))
        claimed += [job_id for batch in batches for job_id, _ in batch]
    assert sorted(claimed) == sorted(ids)  # each exactly once


async def test_burst_worker_runs_each_enqueued_job_once(redis: Redis) -> None:
    runs: list[int] = []

    async def record(ctx: dict[str, Any], n: int) -> None:
        runs.append(n)

    pool = ArqRedis(connection_pool=redis.connection_pool)
    for n in range(25):
        await pool.enqueue_job("record", n, _job_id=f"record:{n}")
    worker = WakeableWorker(
        functions=[func(record, name="record")],  # type: ignore[arg-type]
        redis_pool=pool,
        handle_signals=False,
        burst=True,
        max_jobs=7,  # fewer slots than jobs: several polls, semaphore bookkeeping exercised
        poll_delay=0.01,
        keep_result=0,
    )
    await asyncio.wait_for(worker.async_run(), 20)
    assert sorted(runs) == list(range(25))
    assert worker.jobs_complete == 25 and worker.jobs_failed == 0
    assert worker.job_counter == 0
    assert await redis.zcard(QUEUE) == 0
    assert await redis.keys(in_progress_key_prefix + "*") == []


async def test_a_full_worker_claims_again_as_soon_as_a_slot_frees(redis: Redis) -> None:
    """Saturated, it does not wait for the next poll (10 s here) to take the next due job."""
    runs: list[int] = []
    all_ran = asyncio.Event()

    async def slow(ctx: dict[str, Any], n: int) -> None:
        await asyncio.sleep(0.02)
        runs.append(n)
        if len(runs) == 10:
            all_ran.set()

    pool = ArqRedis(connection_pool=redis.connection_pool)
    for n in range(10):
        await pool.enqueue_job("slow", n, _job_id=f"slow:{n}")
    worker = WakeableWorker(
        functions=[func(slow, name="slow")],  # type: ignore[arg-type]
        redis_pool=pool,
        handle_signals=False,
        max_jobs=2,
        poll_delay=10,
        keep_result=0,
    )
    began = time.monotonic()
    task = asyncio.create_task(worker.async_run())
    try:
        await asyncio.wait_for(all_ran.wait(), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert sorted(runs) == list(range(10))
    assert time.monotonic() - began < 3


# ---- applications and auth -------------------------------------------------------------------


async def test_app_by_api_key_in_one_lookup_matches_get_app(redis: Redis) -> None:
    new = await create_app(redis, "t", "https://example.com/hook", "2024-01-01T00:00:00Z")
    found = await get_app_by_api_key(redis, new.app.api_key)
    assert found == await get_app(redis, new.app.id) == new.app
    assert await get_app_by_api_key(redis, "nope") is None
    # a dangling api key (application hash gone) is no application
    await redis.delete(constants.APP_PREFIX + new.app.id)
    assert await get_app_by_api_key(redis, new.app.api_key) is None


async def test_app_cache_is_bounded_and_sees_this_process_disable(redis: Redis) -> None:
    new = await create_app(redis, "t", "https://example.com/hook", "2024-01-01T00:00:00Z")
    app_id = new.app.id
    assert await get_app_cached(redis, app_id) == new.app
    # another process changes the URL: seen once the entry is older than its bound
    await redis.hset(constants.APP_PREFIX + app_id, "status_url", "https://example.com/new")  # type: ignore[misc]
    cached = await get_app_cached(redis, app_id)
    assert cached is not None and cached.status_url == "https://example.com/hook"
    fresh = await get_app_cached(redis, app_id, max_age=0)
    assert fresh is not None and fresh.status_url == "https://example.com/new"
    # a 410 in this process disables the cached entry at once
    await disable_status_url(redis, app_id)
    cached = await get_app_cached(redis, app_id)
    assert cached is not None and cached.status_url_disabled
    # update_app (re-enable) drops the entry
    await update_app(redis, app_id, enable_status_url=True)
    cached = await get_app_cached(redis, app_id)
    assert cached is not None and not cached.status_url_disabled
    assert APP_CACHE_MAX_AGE_S <= 1.0


def _token(private_pem: str, app_id: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"application_id": app_id, "iat": now, "jti": str(uuid.uuid4()), **claims}
    return jwt.encode(body, private_pem, algorithm="RS256")


def _bearer(token: str) -> str:
    return "Bearer " + token


async def test_jwt_key_cache_follows_a_changed_public_key(redis: Redis) -> None:
    new = await create_app(redis, "t", "", "2024-01-01T00:00:00Z")
    app_id = new.app.id
    principal = await auth.authenticate(redis, _bearer(_token(new.private_key_pem, app_id)), 0)
    assert principal.app.id == app_id and principal.method == "jwt"

    # rotate the key (as another process would): once this process's application cache lets go
    # (APP_CACHE_MAX_AGE_S), tokens of the old key are refused and the new key works
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_private = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    other_public = (
        other.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    await redis.hset(constants.APP_PREFIX + app_id, "public_key_pem", other_public)  # type: ignore[misc]
    await asyncio.sleep(APP_CACHE_MAX_AGE_S)
    with pytest.raises(auth.AuthError):
        await auth.authenticate(redis, _bearer(_token(new.private_key_pem, app_id)), 0)
    assert (await auth.authenticate(redis, _bearer(_token(other_private, app_id)), 0)).app.id == (
        app_id
    )


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.???.sig",
        _b64({"alg": "RS256"}) + "." + base64.urlsafe_b64encode(b"[1]").decode() + ".x",
        _b64({"alg": "RS256"}) + "." + base64.urlsafe_b64encode(b"\xff\xfe").decode() + ".x",
        _b64({"alg": "RS256"}) + "." + _b64({"application_id": "x" * 65}) + ".x",
        # nesting deeper than the JSON decoder recurses
        base64.urlsafe_b64encode(b"[" * 100_000).decode() + "." + _b64({}) + ".x",
    ],
)
async def test_malformed_tokens_are_refused(redis: Redis, token: str) -> None:
    with pytest.raises(auth.AuthError):
        await auth.authenticate(redis, "Bearer " + token, 0)


async def test_jwt_attacks_are_refused(redis: Redis) -> None:
    new = await create_app(redis, "t", "", "2024-01-01T00:00:00Z")
    app_id = new.app.id
    now = int(time.time())
    claims = {"application_id": app_id, "iat": now, "jti": str(uuid.uuid4())}
    unsigned = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + "."
    # PyJWT refuses to sign this one, so sign it by hand: HMAC keyed with the public PEM
    hs_input = _b64({"alg": "HS256", "typ": "JWT"}) + "." + _b64(claims)
    mac = hmac.new(new.app.public_key_pem.encode(), hs_input.encode(), hashlib.sha256).digest()
    hs256 = hs_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    good = _token(new.private_key_pem, app_id)
    head, _, sig = good.split(".")
    tampered = head + "." + _b64({**claims, "application_id": app_id, "x": 1}) + "." + sig
    victim = await create_app(redis, "v", "", "2024-01-01T00:00:00Z")
    # signed with one application's key, naming another application
    swapped = _token(new.private_key_pem, victim.app.id)
    for bad in (unsigned, hs256, tampered, swapped):
        with pytest.raises(auth.AuthError):
            await auth.authenticate(redis, _bearer(bad), 0)
    with pytest.raises(auth.AuthError) as expired:
        await auth.authenticate(
            redis, _bearer(_token(new.private_key_pem, app_id, iat=now - 600, exp=now - 60)), 0
        )
    assert expired.value.expired
    # replayed jti
    once = _token(new.private_key_pem, app_id)
    await auth.authenticate(redis, _bearer(once), 0)
    with pytest.raises(auth.AuthError):
        await auth.authenticate(redis, _bearer(once), 0)


# ---- outbox ----------------------------------------------------------------------------------


async def test_outbox_append_is_idempotent_per_message_id(redis: Redis) -> None:
    message = {"id": "m1", "to": "+44 7700 900123", "text": "hi"}
    assert await outbox.append(redis, "acct", message) is True
    assert await outbox.append(redis, "acct", message) is False
    await redis.script_flush()  # the script is reloaded after a Redis restart / SCRIPT FLUSH
    assert await outbox.append(redis, "acct", {**message, "id": "m2"}) is True
    assert [m["id"] for m in await outbox.list_messages(redis, "acct", "447700900123")] == [
        "m2",
        "m1",
    ]
    # older messages count too; ids only match whole, never inside another id or the text
    assert await outbox.append(redis, "acct", message) is False
    assert await outbox.append(redis, "acct", {**message, "id": "m"}) is True
    quoting = {**message, "id": "m3", "text": 'say "id":"m4"'}
    assert await outbox.append(redis, "acct", quoting) is True
    assert await outbox.append(redis, "acct", {**message, "id": "m4"}) is True
    assert await outbox.append(redis, "acct", quoting) is False


# ---- phone numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "digits", ["447700900123", "14155550100", "33612345678", "9901234562", "12", "0044123"]
)
@pytest.mark.parametrize("sandbox", [True, False])
def test_parse_number_agrees_with_parse_msisdn_and_region_of(digits: str, sandbox: bool) -> None:
    parsed = parse_number(digits, sandbox=sandbox)
    assert (parsed.digits if parsed else None) == parse_msisdn(digits, sandbox=sandbox)
    if parsed is not None:
        assert parsed.region == region_of(digits)


def test_vonage_locale_comes_from_the_first_number() -> None:
    now = datetime.now(UTC)
    for to, locale in (("447700900123", "en-gb"), ("33612345678", "fr-fr")):
        req = vonage.parse_start(
            {
                "brand": "B",
                "workflow": [{"channel": "email", "to": "a@b.co"}, {"channel": "sms", "to": to}],
            }
        )
        v = vonage.build_verification(
            req, tenant="t", account="a", now=now, sandbox=True, notify=False
        )
        assert v.locale == locale


# ---- stored state ----------------------------------------------------------------------------


def _allows_none(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation) or (
        isinstance(annotation, types.UnionType) and type(None) in annotation.__args__
    )


@pytest.mark.parametrize("model", [Verification, Step, Rules])
def test_every_nullable_field_defaults_to_none(model: type[BaseModel]) -> None:
    """State is stored with exclude_none: a missing field must load back as None."""
    for name, field in model.model_fields.items():
        if _allows_none(field.annotation):
            assert not field.is_required() and field.default is None, name


def test_state_without_none_fields_loads_back_equal() -> None:
    now = datetime.now(UTC)
    req = vonage.parse_start(
        {"brand": "B", "workflow": [{"channel": "sms", "to": "447700900123"}], "client_ref": None}
    )
    v = vonage.build_verification(req, tenant="t", account="a", now=now, sandbox=True, notify=False)
    v.extra = {"amount": None, "lookup": {}}
    stored = v.model_dump_json(exclude_none=True)
    assert "null" not in stored.replace('"amount":null', "")
    assert Verification.model_validate_json(stored) == v


# ---- codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [4, 6, 10])
def test_new_code_is_length_digits_with_leading_zeros(length: int) -> None:
    tools = SecretCodeTools(b"k" * 32)
    codes = [tools.new_code(length) for _ in range(3000)]
    assert all(len(c) == length and c.isdigit() for c in codes)
    assert any(c.startswith("0") for c in codes)  # 1 in 10 does; 3000 draws


async def test_outbox_messages_read_back_with_the_request_id_their_id_carries(redis: Redis) -> None:
    stored = {"id": "rid-1:0", "channel": "sms", "to": "447700900123", "code": "1234"}
    await outbox.append(redis, "acct", stored)
    kept = {"id": "rid-2:0", "request_id": "other", "to": "447700900123", "code": "5678"}
    await outbox.append(redis, "acct", kept)
    push = {"id": "YC1:2", "channel": "push", "to": "447700900123"}
    await outbox.append(redis, "acct", push)
    found = await outbox.list_messages(redis, "acct", "447700900123")
    assert found == [
        push,
        kept,
        {
            "id": "rid-1:0",
            "request_id": "rid-1",
            "channel": "sms",
            "to": "447700900123",
            "code": "1234",
        },
    ]
    assert list(found[2]) == ["id", "request_id", "channel", "to", "code"]

"""The stored verification: "<version>:<state JSON>" (defaults and the request id left out), and
verifications an older version wrote as a hash {v, s} still load and commit."""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.domain import transition
from orchestrator.domain.events import CodeSubmitted
from orchestrator.domain.models import Channel, Status, Step, Verification
from orchestrator.engine.store import Store, split_stored
from tests.unit.domain.test_transition import FakeTools

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RID = "6a1f3c2e-0b7d-4d59-9a43-1c2b3d4e5f60"


def _store(redis: Redis) -> Store:
    return Store(redis, lambda v, e: None, retention_seconds=3600)


def _verification() -> Verification:
    return Verification(
        request_id=RID,
        tenant="app-1",
        brand="ACME",
        locale="en-gb",
        channel_timeout=180,
        code_length=4,
        steps=[Step(channel=Channel.SMS, to="447700900123")],
        created_at=NOW,
    )


async def test_state_is_one_compact_string_and_loads_back_whole(redis: Redis) -> None:
    store = _store(redis)
    tools = FakeTools()
    t = transition.begin(_verification(), NOW, tools)
    await store.create(t, NOW)
    raw = await redis.get(constants.VERIFICATION_PREFIX + RID)
    assert raw is not None
    version, state = split_stored(raw)
    assert version == 1
    assert b"request_id" not in state  # the key carries it
    assert b'"rules"' not in state and b'"wrong_attempts"' not in state  # defaults left out
    loaded = await store.load(RID)
    assert loaded is not None and loaded == (t.state, 1)


async def test_a_verification_stored_as_a_hash_by_an_older_version_loads_and_commits(
    redis: Redis,
) -> None:
    store = _store(redis)
    tools = FakeTools()
    t = transition.begin(_verification(), NOW, tools)
    key = constants.VERIFICATION_PREFIX + RID
    await redis.hset(key, mapping={"v": "3", "s": t.state.model_dump_json(exclude_none=True)})  # type: ignore[misc]
    loaded = await store.load(RID)
    assert loaded is not None and loaded == (t.state, 3)

    code_hash = tools.hash_code(RID, "1111")
    done = await store.apply(
        RID, None, lambda v: transition.transition(v, CodeSubmitted(code_hash), NOW, tools), NOW
    )
    assert done.state.status is Status.COMPLETED
    assert await redis.type(key) == b"string"
    again = await store.load(RID)
    assert again is not None and again[1] == 4 and again[0].status is Status.COMPLETED

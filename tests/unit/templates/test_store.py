"""The account's templates in Redis: limits, uniqueness, default, fragments, concurrency."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from orchestrator.templates import store

ACCOUNT = "AC" + "0" * 32


async def test_the_first_template_is_the_default_and_ids_map_to_sids(redis: Redis) -> None:
    first = await store.create_template(redis, ACCOUNT, "login")
    second = await store.create_template(redis, ACCOUNT, "signup")
    assert first.is_default and not second.is_default
    listed = await store.list_templates(redis, ACCOUNT)
    assert [(t.name, t.is_default) for t in listed] == [("login", True), ("signup", False)]
    assert first.sid.startswith("HJ") and len(first.sid) == 34
    assert store.id_for_sid(first.sid) == first.id
    assert store.id_for_sid("HJ" + "z" * 32) is None
    assert store.id_for_sid("VA" + "0" * 32) is None


async def test_names_are_unique_per_account_and_ten_at_most(redis: Redis) -> None:
    await store.create_template(redis, ACCOUNT, "t0")
    with pytest.raises(store.TemplateError) as exc:
        await store.create_template(redis, ACCOUNT, "t0")
    assert exc.value.kind == "template-exists"
    # another account has its own namespace
    await store.create_template(redis, "AC" + "1" * 32, "t0")
    for i in range(1, store.MAX_TEMPLATES):
        await store.create_template(redis, ACCOUNT, f"t{i}")
    with pytest.raises(store.TemplateError) as exc:
        await store.create_template(redis, ACCOUNT, "one-too-many")
    assert exc.value.kind == "max-templates"


async def test_concurrent_creates_keep_the_limit(redis: Redis) -> None:
    results = await asyncio.gather(
        *(store.create_template(redis, ACCOUNT, f"n{i}") for i in range(15)),
        return_exceptions=True,
    )
    created = [r for r in results if isinstance(r, store.Template)]
    refused = [r for r in results if isinstance(r, store.TemplateError)]
    assert len(created) == store.MAX_TEMPLATES and len(refused) == 5
    assert len(await store.list_templates(redis, ACCOUNT)) == store.MAX_TEMPLATES
    assert sum(t.is_default for t in await store.list_templates(redis, ACCOUNT)) == 1


async def test_update_moves_the_default_and_renames(redis: Redis) -> None:
    a = await store.create_template(redis, ACCOUNT, "a")
    b = await store.create_template(redis, ACCOUNT, "b")
    moved = await store.update_template(redis, ACCOUNT, b.id, is_default=True, name="bee")
    assert moved.is_default and moved.name == "bee"
    assert not (await store.get_template(redis, ACCOUNT, a.id)).is_default
    with pytest.raises(store.TemplateError) as exc:
        await store.update_template(redis, ACCOUNT, a.id, name="bee")
    assert exc.value.kind == "template-exists"
    cleared = await store.update_template(redis, ACCOUNT, b.id, is_default=False)
    assert not cleared.is_default
    assert await store.default_template(redis, ACCOUNT) is None


async def test_fragments_are_unique_per_channel_and_locale(redis: Redis) -> None:
    t = await store.create_template(redis, ACCOUNT, "login")
    f = await store.add_fragment(redis, ACCOUNT, t.id, "sms", "en-gb", "${code}")
    await store.add_fragment(redis, ACCOUNT, t.id, "voice", "en-gb", "${code}")
    with pytest.raises(store.TemplateError) as exc:
        await store.add_fragment(redis, ACCOUNT, t.id, "sms", "en-gb", "again ${code}")
    assert exc.value.kind == "fragment-exists"
    updated = await store.update_fragment(redis, ACCOUNT, t.id, f.id, "new ${code}")
    assert updated.text == "new ${code}" and updated.created == f.created
    got = await store.get_template(redis, ACCOUNT, t.id)
    assert [x.text for x in got.fragments] == ["new ${code}", "${code}"]


async def test_a_template_with_fragments_is_not_deleted(redis: Redis) -> None:
    t = await store.create_template(redis, ACCOUNT, "login")
    f = await store.add_fragment(redis, ACCOUNT, t.id, "sms", "en", "${code}")
    with pytest.raises(store.TemplateError) as exc:
        await store.delete_template(redis, ACCOUNT, t.id)
    assert exc.value.kind == "not-empty-template"
    await store.delete_fragment(redis, ACCOUNT, t.id, f.id)
    with pytest.raises(store.TemplateError) as exc:
        await store.delete_fragment(redis, ACCOUNT, t.id, f.id)
    assert exc.value.kind == "template-fragment-not-found"
    await store.delete_template(redis, ACCOUNT, t.id)
    with pytest.raises(store.TemplateError) as exc:
        await store.get_template(redis, ACCOUNT, t.id)
    assert exc.value.kind == "template-not-found"
    # the default went with it; the next template created becomes the default
    assert await store.default_template(redis, ACCOUNT) is None
    assert (await store.create_template(redis, ACCOUNT, "next")).is_default


async def test_default_template_sees_this_process_writes_at_once(redis: Redis) -> None:
    assert await store.default_template(redis, ACCOUNT) is None
    t = await store.create_template(redis, ACCOUNT, "login")
    await store.add_fragment(redis, ACCOUNT, t.id, "sms", "en", "${code}")
    found = await store.default_template(redis, ACCOUNT)
    assert found is not None and found.id == t.id and len(found.fragments) == 1

"""Twilio RateLimits and Buckets through the official `twilio` SDK, against the real stack."""

from __future__ import annotations

import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

from tests.support.processes import Stack
from tests.support.twilio import Tenant, new_account, new_tenant, sdk_client


@pytest.fixture
def tenant(stack: Stack) -> Tenant:
    return new_tenant(stack, "ratelimits", "RL test")


def _numbers(count: int) -> list[str]:
    picked = random.sample(range(10**5), count)
    return [f"+4477009{n:05d}" for n in picked]


def _unique() -> str:
    return "rl_" + uuid.uuid4().hex[:12]


def _start(tenant: Tenant, to: str, rate_limits: dict[str, str]) -> Any:
    return tenant.service.verifications.create(to=to, channel="sms", rate_limits=rate_limits)


def _raw_start(tenant: Tenant, to: str, rate_limits: str) -> requests.Response:
    return tenant.request(
        "POST",
        f"/v2/Services/{tenant.service_sid}/Verifications",
        data={"To": to, "Channel": "sms", "RateLimits": rate_limits},
    )


# ---- RateLimits CRUD ----------------------------------------------------------------------------


def test_rate_limit_create_fetch_update_list_delete(tenant: Tenant) -> None:
    name = _unique()
    created = tenant.service.rate_limits.create(unique_name=name, description="per IP")
    assert created.sid.startswith("RK") and len(created.sid) == 34
    assert created.service_sid == tenant.service_sid
    assert created.account_sid == tenant.account_sid
    assert created.unique_name == name
    assert created.description == "per IP"
    assert created.date_created is not None and not isinstance(created.date_created, str)
    assert created.url.endswith(f"/v2/Services/{tenant.service_sid}/RateLimits/{created.sid}")
    assert created.links == {"buckets": created.url + "/Buckets"}

    fetched = tenant.service.rate_limits(created.sid).fetch()
    assert (fetched.sid, fetched.unique_name, fetched.description) == (
        created.sid,
        name,
        "per IP",
    )

    updated = tenant.service.rate_limits(created.sid).update(description="per end-user IP")
    assert updated.description == "per end-user IP"
    assert updated.unique_name == name
    assert tenant.service.rate_limits(created.sid).fetch().description == "per end-user IP"

    assert [r.sid for r in tenant.service.rate_limits.list()] == [created.sid]

    assert tenant.service.rate_limits(created.sid).delete() is True
    with pytest.raises(TwilioRestException) as caught:
        tenant.service.rate_limits(created.sid).fetch()
    assert (caught.value.status, caught.value.code) == (404, 20404)
    assert tenant.service.rate_limits.list() == []


def test_rate_limit_without_description(tenant: Tenant) -> None:
    created = tenant.service.rate_limits.create(unique_name="end_user.ip-v4")
    assert created.description is None


def test_rate_limit_unique_name_is_unique_per_service(tenant: Tenant, stack: Stack) -> None:
    name = _unique()
    tenant.service.rate_limits.create(unique_name=name)
    with pytest.raises(TwilioRestException) as caught:
        tenant.service.rate_limits.create(unique_name=name)
    assert (caught.value.status, caught.value.code) == (400, 60200)
    assert "UniqueName" in caught.value.msg
    # another service of the same account may use the name
    other = tenant.client.verify.v2.services.create(friendly_name="other")
    assert tenant.client.verify.v2.services(other.sid).rate_limits.create(unique_name=name).sid


@pytest.mark.parametrize(
    "unique_name", ["", "has space", "emoji\u2603", "a/b", "x" * 65, "semi;colon"]
)
def test_rate_limit_bad_unique_name(tenant: Tenant, unique_name: str) -> None:
    with pytest.raises(TwilioRestException) as caught:
        tenant.service.rate_limits.create(unique_name=unique_name)
    assert (caught.value.status, caught.value.code) == (400, 60200)
    assert "UniqueName" in caught.value.msg


def test_rate_limit_description_too_long(tenant: Tenant) -> None:
    tenant.service.rate_limits.create(unique_name=_unique(), description="d" * 256)
    with pytest.raises(TwilioRestException) as caught:
        tenant.service.rate_limits.create(unique_name=_unique(), description="d" * 257)
    assert (caught.value.status, caught.value.code) == (400, 60200)


def test_rate_limit_pagination(tenant: Tenant) -> None:
    sids = [tenant.service.rate_limits.create(unique_name=_unique()).sid for _ in range(3)]
    assert [r.sid for r in tenant.service.rate_limits.list(page_size=1)] == sids
    first = tenant.service.rate_limits.page(page_size=1)
    assert first.next_page_url is not None
    assert first.next_page_url.startswith(tenant.client.verify.base_url + "/v2/Services/")
    second = first.next_page()
    assert second is not None
    assert [r.sid for r in second] == sids[1:2]
    last = second.next_page()
    assert last is not None
    assert [r.sid for r in last] == sids[2:]
    assert last.next_page_url is None
    assert [r.sid for r in tenant.service.rate_limits.list(limit=2, page_size=1)] == sids[:2]


def test_rate_limits_are_scoped_to_their_service_and_account(tenant: Tenant, stack: Stack) -> None:
    created = tenant.service.rate_limits.create(unique_name=_unique())
    other_service = tenant.client.verify.v2.services.create(friendly_name="other")
    with pytest.raises(TwilioRestException) as caught:
        tenant.client.verify.v2.services(other_service.sid).rate_limits(created.sid).fetch()
    assert caught.value.status == 404
    other = new_account(stack, "intruder")
    intruder = sdk_client(stack, other.sid, other.token)
    with pytest.raises(TwilioRestException) as caught:
        intruder.verify.v2.services(tenant.service_sid).rate_limits(created.sid).fetch()
    assert caught.value.status == 404
    with pytest.raises(TwilioRestException) as caught:
        tenant.service.rate_limits("RK" + "0" * 32).fetch()
    assert caught.value.status == 404


# ---- Buckets CRUD -------------------------------------------------------------------------------


def test_bucket_create_fetch_update_list_delete(tenant: Tenant) -> None:
    rate_limit = tenant.service.rate_limits.create(unique_name=_unique())
    buckets = tenant.service.rate_limits(rate_limit.sid).buckets
    created = buckets.create(max=5, interval=60)
    assert created.sid.startswith("BL") and len(created.sid) == 34
    assert created.rate_limit_sid == rate_limit.sid
    assert created.service_sid == tenant.service_sid
    assert created.account_sid == tenant.account_sid
    assert (created.max, created.interval) == (5, 60)
    assert created.url == f"{rate_limit.url}/Buckets/{created.sid}"
    assert created.date_updated is not None and not isinstance(created.date_updated, str)

    fetched = buckets(created.sid).fetch()
    assert (fetched.sid, fetched.max, fetched.interval) == (created.sid, 5, 60)

    assert (buckets(created.sid).update(max=7).max, buckets(created.sid).fetch().interval) == (
        7,
        60,
    )
    updated = buckets(created.sid).update(interval=3600)
    assert (updated.max, updated.interval) == (7, 3600)
    updated = buckets(created.sid).update()
    assert (updated.max, updated.interval) == (7, 3600)

    second = buckets.create(max=1, interval=1)
    assert [b.sid for b in buckets.list()] == [created.sid, second.sid]
    assert [b.sid for b in buckets.list(page_size=1)] == [created.sid, second.sid]

    assert buckets(created.sid).delete() is True
    with pytest.raises(TwilioRestException) as caught:
        buckets(created.sid).fetch()
    assert (caught.value.status, caught.value.code) == (404, 20404)
    assert [b.sid for b in buckets.list()] == [second.sid]


@pytest.mark.parametrize(
    ("max_", "interval", "bad"),
    [
        (0, 60, "Max"),
        (10**6 + 1, 60, "Max"),
        (-1, 60, "Max"),
        (None, 60, "Max"),
        (5, 0, "Interval"),
        (5, 86401, "Interval"),
        (5, None, "Interval"),
    ],
)
def test_bucket_bad_parameters(
    tenant: Tenant, max_: int | None, interval: int | None, bad: str
) -> None:
    rate_limit = tenant.service.rate_limits.create(unique_name=_unique())
    buckets = tenant.service.rate_limits(rate_limit.sid).buckets
    with pytest.raises(TwilioRestException) as caught:
        buckets.create(max=max_, interval=interval)  # type: ignore[arg-type]
    assert (caught.value.status, caught.value.code) == (400, 60200)
    assert bad in caught.value.msg
    good = buckets.create(max=10**6, interval=86400)
    with pytest.raises(TwilioRestException) as caught:
        buckets(good.sid).update(interval=86401)
    assert (caught.value.status, caught.value.code) == (400, 60200)


def test_at_most_ten_buckets_per_rate_limit(tenant: Tenant) -> None:
    rate_limit = tenant.service.rate_limits.create(unique_name=_unique())
    buckets = tenant.service.rate_limits(rate_limit.sid).buckets
    made = [buckets.create(max=i + 1, interval=60).sid for i in range(10)]
    with pytest.raises(TwilioRestException) as caught:
        buckets.create(max=11, interval=60)
    assert (caught.value.status, caught.value.code) == (400, 60210)
    assert len(buckets.list()) == 10
    # freeing a slot makes room again
    buckets(made[0]).delete()
    assert buckets.create(max=11, interval=60).max == 11


def test_bucket_of_another_rate_limit_is_not_found(tenant: Tenant) -> None:
    one = tenant.service.rate_limits.create(unique_name=_unique())
    two = tenant.service.rate_limits.create(unique_name=_unique())
    bucket = tenant.service.rate_limits(one.sid).buckets.create(max=1, interval=10)
    with pytest.raises(TwilioRestException) as caught:
        tenant.service.rate_limits(two.sid).buckets(bucket.sid).fetch()
    assert caught.value.status == 404


def test_deleting_a_rate_limit_deletes_its_buckets(tenant: Tenant, db: redis.Redis) -> None:
    name = _unique()
    rate_limit = tenant.service.rate_limits.create(unique_name=name)
    buckets = tenant.service.rate_limits(rate_limit.sid).buckets
    sids = [buckets.create(max=2, interval=60).sid for _ in range(2)]
    assert all(db.exists(f"vo:bl:{sid}") for sid in sids)
    tenant.service.rate_limits(rate_limit.sid).delete()
    assert not any(db.exists(f"vo:bl:{sid}") for sid in sids)
    assert not db.exists(f"vo:rl-bls:{rate_limit.sid}")
    with pytest.raises(TwilioRestException) as caught:
        buckets(sids[0]).fetch()
    assert caught.value.status == 404
    # the SDK reads a non-200 list page as a bare TwilioException carrying the response
    with pytest.raises(TwilioException) as listed:
        buckets.list()
    assert "HTTP 404" in str(listed.value)
    # the name is free again, and a start naming it no longer finds the old buckets
    again = tenant.service.rate_limits.create(unique_name=name)
    assert again.sid != rate_limit.sid


# ---- Enforcement on verification starts ---------------------------------------------------------


def _ip_limit(tenant: Tenant, max_: int, interval: int, name: str = "end_user_ip") -> Any:
    rate_limit = tenant.service.rate_limits.create(unique_name=name)
    tenant.service.rate_limits(rate_limit.sid).buckets.create(max=max_, interval=interval)
    return rate_limit


def test_bucket_limits_starts_per_value(tenant: Tenant) -> None:
    _ip_limit(tenant, max_=2, interval=60)
    first, second, third, fourth = _numbers(4)
    assert _start(tenant, first, {"end_user_ip": "1.2.3.4"}).status == "pending"
    assert _start(tenant, second, {"end_user_ip": "1.2.3.4"}).status == "pending"
    with pytest.raises(TwilioRestException) as caught:
        _start(tenant, third, {"end_user_ip": "1.2.3.4"})
    assert (caught.value.status, caught.value.code) == (429, 20429)
    # another value has its own window
    assert _start(tenant, third, {"end_user_ip": "5.6.7.8"}).status == "pending"
    # the refusal carries when to retry and which rate limit refused
    refused = _raw_start(tenant, fourth, '{"end_user_ip": "1.2.3.4"}')
    assert refused.status_code == 429
    assert refused.json()["code"] == 20429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["Twilio-Reached-Rate-Limit"] == "end_user_ip"
    # a start without RateLimits is not limited
    assert _start(tenant, fourth, {}).status == "pending"


def test_unknown_unique_name_is_invalid(tenant: Tenant) -> None:
    _ip_limit(tenant, max_=1, interval=60)
    (to,) = _numbers(1)
    with pytest.raises(TwilioRestException) as caught:
        _start(tenant, to, {"no_such_limit": "x"})
    assert (caught.value.status, caught.value.code) == (400, 60200)
    assert "RateLimits" in caught.value.msg
    # nothing was counted: the known limit still has its one start
    with pytest.raises(TwilioRestException) as caught:
        _start(tenant, to, {"end_user_ip": "9.9.9.9", "no_such_limit": "x"})
    assert caught.value.status == 400
    assert _start(tenant, to, {"end_user_ip": "9.9.9.9"}).status == "pending"


def test_rate_limit_without_buckets_lets_starts_through(tenant: Tenant) -> None:
    tenant.service.rate_limits.create(unique_name="unbounded")
    for to in _numbers(3):
        assert _start(tenant, to, {"unbounded": "same"}).status == "pending"


def test_refused_start_counts_in_no_bucket(tenant: Tenant, db: redis.Redis) -> None:
    rate_limit = tenant.service.rate_limits.create(unique_name="user_id")
    buckets = tenant.service.rate_limits(rate_limit.sid).buckets
    loose = buckets.create(max=5, interval=60)
    tight = buckets.create(max=1, interval=60)
    first, second = _numbers(2)
    _start(tenant, first, {"user_id": "u-1"})
    with pytest.raises(TwilioRestException) as caught:
        _start(tenant, second, {"user_id": "u-1"})
    assert caught.value.status == 429
    (loose_key,) = db.keys(f"vo:rlw:{loose.sid}:*")
    (tight_key,) = db.keys(f"vo:rlw:{tight.sid}:*")
    assert db.zcard(loose_key) == 1
    assert db.zcard(tight_key) == 1
    # windows expire with their interval; values are not stored in clear
    assert 0 < db.pttl(loose_key) <= 60_000
    assert b"u-1" not in loose_key


def test_every_named_rate_limit_is_enforced(tenant: Tenant) -> None:
    _ip_limit(tenant, max_=10, interval=60, name="ip")
    _ip_limit(tenant, max_=1, interval=60, name="phone")
    first, second = _numbers(2)
    _start(tenant, first, {"ip": "1.1.1.1", "phone": first})
    refused = _raw_start(tenant, first, f'{{"ip": "1.1.1.1", "phone": "{first}"}}')
    assert refused.status_code == 429
    assert refused.headers["Twilio-Reached-Rate-Limit"] == "phone"
    assert _start(tenant, second, {"ip": "1.1.1.1", "phone": second}).status == "pending"


def test_window_frees_after_the_interval(tenant: Tenant) -> None:
    _ip_limit(tenant, max_=1, interval=1)
    first, second = _numbers(2)
    _start(tenant, first, {"end_user_ip": "2.2.2.2"})
    refused = _raw_start(tenant, second, '{"end_user_ip": "2.2.2.2"}')
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    time.sleep(1.1)
    assert _start(tenant, second, {"end_user_ip": "2.2.2.2"}).status == "pending"


def test_lowering_max_applies_to_the_current_window(tenant: Tenant) -> None:
    rate_limit = _ip_limit(tenant, max_=3, interval=60)
    bucket = tenant.service.rate_limits(rate_limit.sid).buckets.list()[0]
    first, second, third = _numbers(3)
    _start(tenant, first, {"end_user_ip": "3.3.3.3"})
    _start(tenant, second, {"end_user_ip": "3.3.3.3"})
    tenant.service.rate_limits(rate_limit.sid).buckets(bucket.sid).update(max=1)
    with pytest.raises(TwilioRestException) as caught:
        _start(tenant, third, {"end_user_ip": "3.3.3.3"})
    assert caught.value.status == 429


def test_concurrent_starts_cannot_overshoot(tenant: Tenant) -> None:
    _ip_limit(tenant, max_=3, interval=60)
    numbers = _numbers(12)
    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(
            pool.map(
                lambda to: _raw_start(tenant, to, '{"end_user_ip": "4.4.4.4"}').status_code,
                numbers,
            )
        )
    assert sorted(codes) == [201] * 3 + [429] * 9

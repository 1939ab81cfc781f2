"""Brute force: guessing codes (50 concurrent wrong checks cannot beat the attempt limit of
either dialect) and guessing Basic-auth secrets (locked out after a few failures, even with
the right secret, until the window passes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.engine.store import split_stored
from orchestrator.security import lockout as authguard
from orchestrator.settings import Settings
from tests.security.helpers import (
    AUTH_FAIL_IP_LIMIT,
    AUTH_FAIL_LIMIT,
    AUTH_FAIL_WINDOW,
    Twilio,
    Vonage,
    basic,
    session_from,
    sms_body,
    uk_number,
)
from tests.support.client import TestApp, VonageApi
from tests.support.processes import Stack, wait_until
from tests.support.receiver import WebhookReceiver

CONCURRENCY = 50


def wrong_code(right: str) -> str:
    return "1" * len(right) if right != "1" * len(right) else "2" * len(right)


def stored_state(stack: Stack, request_id: str) -> dict[str, object]:
    client = redis.Redis.from_url(stack.redis.url)
    try:
        raw = client.get(constants.VERIFICATION_PREFIX + request_id)
    finally:
        client.close()
    assert raw is not None
    state: dict[str, object] = json.loads(split_stored(raw)[1])
    return state


def all_at_once(calls: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Run every call on its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], requests.Response]) -> requests.Response:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


# ---- codes -------------------------------------------------------------------------------------


def test_vonage_attempt_limit_holds_under_50_concurrent_wrong_checks(
    stack: Stack, api: VonageApi, receiver: WebhookReceiver, number: str
) -> None:
    started = api.start(sms_body(number))
    assert started.status_code == 202, started.text
    rid = started.json()["request_id"]
    code = api.wait_message(number, rid, "sms")["code"]
    wrong = wrong_code(code)
    url = f"{stack.url}/v2/verify/{rid}"
    # tokens minted up front (each JWT is single-use), so the requests really overlap
    headers = [api.headers() for _ in range(CONCURRENCY)]

    def check(h: dict[str, str]) -> Callable[[], requests.Response]:
        return lambda: requests.post(
            url, json={"code": wrong}, headers=h, verify=str(stack.cert), timeout=30
        )

    answers = all_at_once([check(h) for h in headers])
    statuses = Counter(r.status_code for r in answers)
    assert statuses[400] == 2, statuses
    assert statuses[410] == 1, statuses
    assert statuses[404] == CONCURRENCY - 3, statuses
    assert set(statuses) == {400, 404, 410}, statuses
    for r in answers:
        assert r.headers["Content-Type"].startswith("application/problem+json"), r.text
    # no fourth attempt was counted, and the request failed once
    state = stored_state(stack, rid)
    assert state["wrong_attempts"] == 3 and state["status"] == "failed", state
    assert receiver.wait_summary(rid).json["status"] == "failed"
    # the right code comes too late
    assert api.check(rid, code).status_code == 404


def test_twilio_attempt_limit_holds_under_50_concurrent_wrong_checks(stack: Stack) -> None:
    tw = Twilio(stack)
    to = "+" + uk_number()
    created = tw.start(to)
    assert created.status_code == 201, created.text
    sid = created.json()["sid"]
    code = tw.code_for(to, sid)
    wrong = wrong_code(code)
    url = f"{stack.url}/v2/Services/{tw.service}/VerificationCheck"
    sessions = [session_from(tw.ip, str(stack.cert)) for _ in range(CONCURRENCY)]

    def check(http: requests.Session) -> Callable[[], requests.Response]:
        return lambda: http.post(
            url, data={"VerificationSid": sid, "Code": wrong}, auth=(tw.sid, tw.token), timeout=30
        )

    answers = all_at_once([check(h) for h in sessions])
    outcomes = Counter(
        (r.status_code, r.json().get("status") if r.status_code == 200 else r.json()["code"])
        for r in answers
    )
    pending = outcomes[(200, "pending")]
    assert pending == 5, outcomes  # every wrong code up to the limit answers pending; never more
    assert set(outcomes) <= {(200, "pending"), (429, 60202), (404, 20404)}, outcomes
    assert outcomes[(429, 60202)] == 1, outcomes
    state = stored_state(stack, sid)
    assert state["wrong_attempts"] == 5 and state["status"] == "failed", state
    # the right code afterwards approves nothing
    late = tw.check(sid, code)
    assert late.status_code == 404, late.text
    assert tw.check(sid, code).json().get("status") != "approved"


# ---- Basic-auth secrets --------------------------------------------------------------------------


def test_vonage_basic_auth_locks_out_an_api_key_even_with_the_right_secret(
    guard_stack: Stack, make_guard_app: Callable[..., TestApp]
) -> None:
    app = make_guard_app()
    api = Vonage(guard_stack, app, auth="basic")
    right = basic(app.api_key, app.api_secret)
    wrong = basic(app.api_key, "not-the-secret")

    def start(authorization: str) -> requests.Response:
        return api.start_with(sms_body(uk_number()), authorization)

    assert start(right).status_code == 202
    for _ in range(AUTH_FAIL_LIMIT):
        refused = start(wrong)
        assert refused.status_code == 401, refused.text
    locked_at = time.monotonic()
    for authorization in (wrong, right):
        throttled = start(authorization)
        assert throttled.status_code == 429, throttled.text
        assert throttled.json()["title"] == "Rate Limit Hit"
        assert throttled.headers["Content-Type"].startswith("application/problem+json")
    # other keys are not locked; JWTs of the same application are not Basic attempts
    other = make_guard_app()
    assert start(basic(other.api_key, other.api_secret)).status_code == 202
    assert Vonage(guard_stack, app, ip=api.ip).start(sms_body(uk_number())).status_code == 202
    # the lockout ends with its window (attempts while locked did not extend it)
    wait_until(
        lambda: start(right).status_code == 202,
        timeout=AUTH_FAIL_WINDOW + 5,
        interval=0.5,
        what="the lockout to end",
    )
    assert time.monotonic() - locked_at >= AUTH_FAIL_WINDOW - 1.5


def test_twilio_basic_auth_locks_out_an_account_sid(guard_stack: Stack) -> None:
    tw = Twilio(guard_stack)
    url = f"{guard_stack.url}/v2/Services/{tw.service}"

    def fetch(token: str) -> requests.Response:
        return tw.http.get(url, auth=(tw.sid, token), timeout=10)

    assert fetch(tw.token).status_code == 200
    for _ in range(AUTH_FAIL_LIMIT):
        refused = fetch("0" * 32)
        assert refused.status_code == 401 and refused.json()["code"] == 20003, refused.text
    throttled = fetch(tw.token)
    assert throttled.status_code == 429, throttled.text
    assert throttled.json() == {
        "code": 20429,
        "message": "Too many requests",
        "more_info": "https://www.twilio.com/docs/errors/20429",
        "status": 429,
    }
    assert 1 <= int(throttled.headers["Retry-After"]) <= AUTH_FAIL_WINDOW
    # a path no route serves stays a 404, whoever knocks
    assert tw.http.get(guard_stack.url + "/v2/Nowhere", auth=(tw.sid, tw.token)).status_code == 404
    wait_until(
        lambda: fetch(tw.token).status_code == 200,
        timeout=AUTH_FAIL_WINDOW + 5,
        interval=0.5,
        what="the lockout to end",
    )


def test_basic_auth_spraying_from_one_address_is_throttled_per_ip(
    guard_stack: Stack, make_guard_app: Callable[..., TestApp]
) -> None:
    app = make_guard_app()
    sprayer = Vonage(guard_stack, app, auth="basic")
    for i in range(AUTH_FAIL_IP_LIMIT):
        # a different (unknown) api key each time: no single key reaches its own limit
        refused = sprayer.start_with(sms_body(uk_number()), basic(f"key{i}", "guess"))
        assert refused.status_code == 401, refused.text
    right = basic(app.api_key, app.api_secret)
    assert sprayer.start_with(sms_body(uk_number()), right).status_code == 429
    # the same credentials from another address are fine
    assert Vonage(guard_stack, app).start_with(sms_body(uk_number()), right).status_code == 202


@pytest.mark.parametrize("header", ["Basic", "Basic !!!notbase64", "Basic " + "QQ=="])
def test_malformed_basic_headers_are_plain_401s(
    guard_stack: Stack, make_guard_app: Callable[..., TestApp], header: str
) -> None:
    api = Vonage(guard_stack, make_guard_app())
    resp = api.start_with(sms_body(uk_number()), header)
    assert resp.status_code == 401, resp.text


async def test_block_watch_follows_blocks_set_by_any_process(guard_stack: Stack) -> None:
    """Serve answers the lockout check from its BlockWatch, not Redis: blocks already set when it
    subscribes and blocks published afterwards must both be in it, and expired ones must not."""
    settings = Settings(
        redis_url=guard_stack.redis.url,
        auth_fail_limit=AUTH_FAIL_LIMIT,
        auth_fail_ip_limit=0,
        auth_fail_window_seconds=AUTH_FAIL_WINDOW,
    )
    client = Redis.from_url(guard_stack.redis.url)
    before, after = f"watch-before-{time.time_ns()}", f"watch-after-{time.time_ns()}"
    for _ in range(AUTH_FAIL_LIMIT):
        await authguard.record_failure(client, settings, before, None)
    watch = authguard.BlockWatch(client)
    task = asyncio.create_task(watch.run())
    try:
        for _ in range(200):
            if watch.live:
                break
            await asyncio.sleep(0.01)
        assert watch.live

        class NoRedis:
            async def mget(self, keys: list[str]) -> list[object]:
                raise AssertionError("a live watch must not read Redis")

        offline: Any = NoRedis()
        locked = await authguard.throttled_for(offline, settings, before, None, watch)
        assert locked is not None and locked[0] == "user"
        assert await authguard.throttled_for(offline, settings, after, None, watch) is None
        for _ in range(AUTH_FAIL_LIMIT):
            await authguard.record_failure(client, settings, after, None)
        for _ in range(100):
            if await authguard.throttled_for(offline, settings, after, None, watch):
                break
            await asyncio.sleep(0.005)
        locked = await authguard.throttled_for(offline, settings, after, None, watch)
        assert locked is not None and 1 <= locked[1] <= AUTH_FAIL_WINDOW
        # the block ends with its window, in the copy too
        await asyncio.sleep(AUTH_FAIL_WINDOW + 0.2)
        assert await authguard.throttled_for(offline, settings, after, None, watch) is None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()


async def test_a_block_this_process_sets_applies_before_its_message_comes_back(
    guard_stack: Stack,
) -> None:
    """The failing request's own process knows the block at once: the very next request may be
    served before the published block reaches this process's subscription (it was a race)."""
    settings = Settings(
        redis_url=guard_stack.redis.url,
        auth_fail_limit=AUTH_FAIL_LIMIT,
        auth_fail_ip_limit=0,
        auth_fail_window_seconds=AUTH_FAIL_WINDOW,
    )
    client = Redis.from_url(guard_stack.redis.url)
    user = f"own-block-{time.time_ns()}"
    watch = authguard.BlockWatch(client)
    watch.live = True  # live, but subscribed to nothing: only what this process learns itself

    class NoRedis:
        async def mget(self, keys: list[str]) -> list[object]:
            raise AssertionError("a live watch must not read Redis")

    offline: Any = NoRedis()
    try:
        for _ in range(AUTH_FAIL_LIMIT - 1):
            await authguard.record_failure(client, settings, user, None, watch)
        assert await authguard.throttled_for(offline, settings, user, None, watch) is None
        await authguard.record_failure(client, settings, user, None, watch)
        locked = await authguard.throttled_for(offline, settings, user, None, watch)
        assert locked is not None and locked[0] == "user"
    finally:
        await client.aclose()

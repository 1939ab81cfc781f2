"""A webhook receiver that fails: 503 for a while, 410 Gone, or 503 until retries run out.

One stack (one worker), the retry schedule [0.3, 0.5, 1, 2, 3] (six attempts over 6.8 s) and
three applications, each with its own path on one receiver:
- /hooks/outage answers 503 until every message was refused at least twice, then 204: every
  event and summary arrives after the recovery, each under one webhook-id with the same body;
- /hooks/gone answers 410: the application's status URL is disabled and nothing more is sent;
- /hooks/dead answers 503 until the retries are exhausted: `webhooks failed` lists the messages
  and `webhooks replay` (one id, then --all) delivers them, still under the same webhook-id.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.support.processes import CLI, Stack, never, wait_until

from .helpers import (
    Receiver,
    make_app,
    receiver,
    redis_client,
    running_stack,
    sms_start,
    vonage,
    wait_code,
)

SCHEDULE = "[0.3,0.5,1,2,3]"
ATTEMPTS = 6


def _verify(stack: Stack, app_and_account: tuple[Any, str], numbers: list[str]) -> list[str]:
    """Start an sms verification to each number and check its code: two webhooks each."""
    app, account = app_and_account
    api = vonage(stack, app)
    r = redis_client(stack)
    rids = [sms_start(api, n) for n in numbers]
    for n, rid in zip(numbers, rids, strict=True):
        checked = api.check(rid, wait_code(r, account, n, rid))
        assert checked.status_code == 200, checked.text
    r.close()
    return rids


def _message_ids(stack: Stack, rids: list[str]) -> set[str]:
    r = redis_client(stack)
    found = {
        k.decode().removeprefix("vo:wh:")
        for rid in rids
        for k in r.scan_iter(f"vo:wh:msg_{rid.replace('-', '')}_*")
    }
    r.close()
    return found


def _failed(stack: Stack) -> dict[str, dict[str, Any]]:
    listed = stack.cli("webhooks", "failed", "--limit", "50")
    assert isinstance(listed, list)
    return {str(e["id"]): e for e in listed}  # type: ignore[index,misc]


def test_outage_gone_and_exhausted_deliveries(tmp_path: Path) -> None:
    with (
        receiver(tmp_path) as hooks,
        running_stack(tmp_path / "stack", VERIFY_WEBHOOK_RETRY_SCHEDULE=SCHEDULE) as stack,
    ):
        outage = make_app(stack, hooks.url("/hooks/outage"), tmp_path)
        gone = make_app(stack, hooks.url("/hooks/gone"), tmp_path)
        dead = make_app(stack, hooks.url("/hooks/dead"), tmp_path)
        hooks.answer("/hooks/outage", 503)
        hooks.answer("/hooks/gone", 410)
        hooks.answer("/hooks/dead", 503)

        # ---- 503 for a while, then 204 ----
        outage_rids = _verify(stack, outage, [f"44770090{i:04d}" for i in range(10)])
        dead_rids = _verify(stack, dead, ["447700901001", "447700901002"])
        outage_ids = _message_ids(stack, outage_rids)
        assert len(outage_ids) == 2 * len(outage_rids)  # the event and the summary of each

        def refused_twice() -> bool:
            refused: dict[str, int] = {}
            for h in hooks.snapshot("/hooks/outage"):
                refused[h.webhook_id] = refused.get(h.webhook_id, 0) + (h.status == 503)
            return all(refused.get(m, 0) >= 2 for m in outage_ids)

        wait_until(refused_twice, timeout=20, interval=0.05, what="two refusals of each message")
        hooks.answer("/hooks/outage", 204)
        wait_until(
            lambda: outage_ids <= set(hooks.accepted("/hooks/outage")),
            timeout=20,
            what="every event delivered after the recovery",
        )
        by_id: dict[str, list[Any]] = {}
        for h in hooks.snapshot("/hooks/outage"):
            by_id.setdefault(h.webhook_id, []).append(h)
        assert set(by_id) == outage_ids  # the webhook-id is the message id, on every attempt
        for message_id, hits in by_id.items():
            statuses = [h.status for h in hits]
            assert statuses[-1] == 204 and set(statuses[:-1]) == {503}, (message_id, statuses)
            assert len(statuses) <= ATTEMPTS
            assert len({h.body for h in hits}) == 1, message_id  # the same event every time
            assert hits[0].json["request_id"] in outage_rids
        kinds = sorted(hits[-1].json["type"] for hits in by_id.values())
        assert kinds == ["event"] * 10 + ["summary"] * 10
        r = redis_client(stack)
        assert all(r.hget(f"vo:wh:{m}", "delivered_ms") for m in outage_ids)

        # ---- 410 Gone disables the status URL ----
        gone_first = _verify(stack, gone, ["447700902001"])
        wait_until(lambda: hooks.snapshot("/hooks/gone"), what="the first delivery to /hooks/gone")
        wait_until(
            lambda: _status_url_disabled(stack, gone[0].application_id),
            timeout=20,
            what="the status URL to be disabled",
        )
        _verify(stack, gone, ["447700902002"])
        never(
            lambda: len(hooks.snapshot("/hooks/gone")) > len(_message_ids(stack, gone_first)),
            within=2.0,
            what="a delivery to a status URL disabled by 410",
        )
        gone_hits = hooks.snapshot("/hooks/gone")
        assert {h.status for h in gone_hits} == {410}
        assert len({h.webhook_id for h in gone_hits}) == len(gone_hits)  # no retry after a 410
        assert r.zcard("vo:wh-failed") == 0  # a 410 is not a failure to replay

        # ---- retries exhausted: listed, replayed ----
        dead_ids = _message_ids(stack, dead_rids)
        wait_until(
            lambda: set(_failed(stack)) == dead_ids,
            timeout=40,
            interval=0.5,
            what="the dead endpoint's messages in `webhooks failed`",
        )
        listed = _failed(stack)
        for message_id in dead_ids:
            entry = listed[message_id]
            assert entry["request_id"] in dead_rids
            assert entry["kind"] in {"event", "summary"}
            assert entry["attempts"] == ATTEMPTS
            assert entry["last_status"] == 503
            assert entry["replays"] == 0 and entry["expired"] is False
            assert str(entry["created"]).endswith("Z")
        assert len(hooks.snapshot("/hooks/dead")) == ATTEMPTS * len(dead_ids)

        # a replay while the endpoint still fails runs the whole schedule again, then is back
        first = sorted(dead_ids)[0]
        replayed = stack.cli("webhooks", "replay", first)
        assert replayed == [{"id": first, "job_id": f"webhook:{first}:replay-1"}]
        assert first not in _failed(stack)
        wait_until(
            lambda: _failed(stack).get(first, {}).get("replays") == 1,
            timeout=40,
            interval=0.5,
            what="the replayed message to be exhausted again",
        )
        assert _failed(stack)[first]["attempts"] == 2 * ATTEMPTS

        # the endpoint recovers: replay one, then all the others
        hooks.answer("/hooks/dead", 204)
        replayed = stack.cli("webhooks", "replay", first)
        assert replayed == [{"id": first, "job_id": f"webhook:{first}:replay-2"}]
        wait_until(lambda: first in hooks.accepted("/hooks/dead"), what="the replayed message")
        assert set(_failed(stack)) == dead_ids - {first}
        replayed_all = stack.cli("webhooks", "replay", "--all")
        assert isinstance(replayed_all, list)
        assert {e["id"] for e in replayed_all} == dead_ids - {first}  # type: ignore[index]
        wait_until(
            lambda: dead_ids <= set(hooks.accepted("/hooks/dead")),
            timeout=20,
            what="every replayed message",
        )
        assert _failed(stack) == {}
        _assert_same_message_each_time(hooks, dead_ids)

        # a message that is not (or no longer) in the failed set is refused
        again = subprocess.run(
            [*CLI, "webhooks", "replay", first],
            env=stack.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert again.returncode == 1, again.stdout
        assert "not in the failed set" in again.stdout
        never(
            lambda: any(len(v) > 1 for v in hooks.accepted("/hooks/dead").values()),
            within=1.0,
            what="a second delivery of a replayed message",
        )
        r.close()


def _status_url_disabled(stack: Stack, application_id: str) -> bool:
    listed = stack.cli("apps", "list")
    assert isinstance(listed, list)
    return any(
        a["application_id"] == application_id and a["status_url_disabled"]  # type: ignore[index]
        for a in listed
    )


def _assert_same_message_each_time(hooks: Receiver, message_ids: set[str]) -> None:
    for message_id in message_ids:
        hits = [h for h in hooks.snapshot("/hooks/dead") if h.webhook_id == message_id]
        assert len({h.body for h in hits}) == 1, message_id
        assert hits[-1].status == 204
        assert hits[-1].headers["webhook-id"] == message_id

"""kill -9 a worker again and again while 500 verifications run.

Two workers; every 0.3-0.5 s the older one (once up for a second: younger ones are still
importing and hold no job) is killed with SIGKILL and a fresh one started in its place, for up
to 30 s while the verifications are started, sent, checked and reported. A killed worker's jobs
(claimed, never finished) are re-run by arq once their in-progress key expires (the longest job
timeout + 10 s). The driver plays the backend: it reads each code from the sandbox outbox and
checks it (80%), moves to the next workflow step first (10%, sms then voice) or cancels (10%).

What must hold afterwards:
- every verification ended: completed (its code checked) or cancelled;
- every step was sent exactly once: the sandbox outbox holds one message per started step;
- every webhook message the service created was delivered: each summary of a JWT-started,
  not-cancelled verification arrived (deduplicated by webhook-id; duplicates are allowed,
  delivery is at-least-once), and nothing is left undelivered or in the failed set.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import redis
import requests

from orchestrator.engine.store import split_stored
from tests.support.client import TestApp, VonageApi
from tests.support.processes import Stack, wait_until

from .helpers import Receiver, make_app, outbox, receiver, redis_client, running_stack, vonage

N = 500
CHAOS_MAX_SECONDS = 30.0
# a worker still importing its modules holds no job: kill only those up for at least this long
MIN_AGE_SECONDS = 1.0


def _history(r: redis.Redis, hooks: Receiver, message_id: str) -> dict[str, object]:
    """What the worker recorded about a message, and what the receiver saw of it."""
    raw = r.hgetall(f"vo:wh:{message_id}")
    record = {k.decode(): v.decode()[:80] for k, v in raw.items()}
    hits = [
        {"arrived": round(h.arrived, 2), "answered": round(h.answered, 2), "status": h.status}
        for h in hooks.snapshot()
        if h.webhook_id == message_id
    ]
    return {"id": message_id, "record": record, "hits": hits}


class Chaos(threading.Thread):
    """Every 0.3-0.5 s kills the older of the two workers (once it has been up MIN_AGE_SECONDS)
    with SIGKILL and starts a replacement."""

    def __init__(self, stack: Stack, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.rng = rng
        self.alive: list[tuple[float, subprocess.Popen[bytes]]] = [
            (time.monotonic(), p) for p in stack.workers
        ]
        self.kills = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + CHAOS_MAX_SECONDS
        while not self.stop_event.wait(self.rng.uniform(0.3, 0.5)):
            if time.monotonic() > deadline:
                return
            born, victim = self.alive[0]
            if time.monotonic() - born < MIN_AGE_SECONDS:
                continue
            self.alive.pop(0)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
            self.kills += 1
            self.alive.append((time.monotonic(), self.stack.start_worker(self.kills % 2)))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(15)


class Driver:
    """Plays the backend: starts each verification, then acts on the code in the outbox."""

    def __init__(self, stack: Stack, app: TestApp, account: str) -> None:
        self.stack, self.app, self.account = stack, app, account
        self.local = threading.local()
        self.numbers = [f"4477009{i:05d}" for i in range(N)]
        # i % 10 == 0: cancel once the code is out; 1: next_workflow to voice, then check; else check
        self.kind = {n: ("cancel" if i % 10 == 0 else "two" if i % 10 == 1 else "check")
                     for i, n in enumerate(self.numbers)}  # fmt: skip
        self.rid: dict[str, str] = {}
        self.started_at: dict[str, float] = {}
        self.stage: dict[str, str] = {}  # number -> waiting-sms | waiting-voice | busy | done
        self.problems: list[str] = []

    def api(self) -> VonageApi:
        if not hasattr(self.local, "api"):
            self.local.api = vonage(self.stack, self.app)
        api: VonageApi = self.local.api
        return api

    def start(self, n: str) -> None:
        steps = [{"channel": "sms", "to": n}]
        if self.kind[n] == "two":
            steps.append({"channel": "voice", "to": n})
        resp = self.api().start({"brand": "ACME", "workflow": steps})
        if resp.status_code != 202:
            self.problems.append(f"start {n}: {resp.status_code} {resp.text}")
            return
        self.rid[n] = resp.json()["request_id"]
        self.started_at[n] = time.time()
        self.stage[n] = "waiting-sms"

    def act(self, n: str, channel: str, code: str) -> None:
        api, rid, kind = self.api(), self.rid[n], self.kind[n]
        try:
            if kind == "cancel":
                resp, want, after = api.cancel(rid), 204, "done"
            elif kind == "two" and channel == "sms":
                resp, want, after = api.next_workflow(rid), 200, "waiting-voice"
            else:
                resp, want, after = api.check(rid, code), 200, "done"
        except requests.RequestException as exc:
            self.problems.append(f"{kind} {rid}: {exc}")
            self.stage[n] = "done"
            return
        if resp.status_code != want:
            self.problems.append(f"{kind} {rid} ({channel}): {resp.status_code} {resp.text}")
            after = "done"
        self.stage[n] = after

    def step(self, r: redis.Redis, pool: ThreadPoolExecutor, pending: list[Future[None]]) -> bool:
        """One pass over the outbox; True when every verification has been acted on."""
        waiting = [n for n, s in self.stage.items() if s.startswith("waiting-")]
        if not waiting:
            return all(s == "done" for s in self.stage.values())
        for n, messages in outbox(r, self.account, waiting).items():
            channel = self.stage[n].removeprefix("waiting-")
            for m in messages:
                if m["request_id"] == self.rid[n] and m["channel"] == channel:
                    self.stage[n] = "busy"
                    pending.append(pool.submit(self.act, n, channel, str(m["code"])))
                    break
        return False


def test_kill_9_workers_while_500_verifications_run(tmp_path: Path) -> None:
    rng = random.Random(5)
    with receiver(tmp_path) as hooks, running_stack(tmp_path / "stack", workers=2) as stack:
        app, account = make_app(stack, hooks.url("/hooks/kill"), tmp_path)
        r = redis_client(stack)
        driver = Driver(stack, app, account)
        chaos = Chaos(stack, rng)
        began = time.monotonic()
        chaos.start()
        pending: list[Future[None]] = []
        with ThreadPoolExecutor(max_workers=6) as pool:
            for f in [pool.submit(driver.start, n) for n in driver.numbers]:
                f.result()
            started_s = time.monotonic() - began
            assert not driver.problems, driver.problems[:5]
            # jobs a killed worker held come back after arq's in-progress timeout (20 s here)
            wait_until(
                lambda: driver.step(r, pool, pending),
                timeout=150,
                interval=0.2,
                what="every verification's code to be sent and acted on",
            )
            for f in pending:
                f.result()
        acted_s = time.monotonic() - began
        # on a fast machine the run may be quicker than the kills: let it reach its share
        wait_until(lambda: chaos.kills >= 20 or not chaos.is_alive(), timeout=30, what="20 kills")
        chaos.stop()
        assert not driver.problems, driver.problems[:5]
        assert chaos.kills >= 20, f"only {chaos.kills} kills"
        assert all(p.poll() is None for _, p in chaos.alive), "the last workers should be running"

        expected = {driver.rid[n] for n in driver.numbers if driver.kind[n] != "cancel"}
        wait_until(
            lambda: expected <= set(hooks.summaries()),
            timeout=90,
            interval=0.25,
            what=f"{len(expected)} summary webhooks "
            f"(missing {len(expected - set(hooks.summaries()))})",
        )
        done_s = time.monotonic() - began

        # every verification ended, as its backend drove it
        pipe = r.pipeline(transaction=False)
        for n in driver.numbers:
            pipe.get(f"vo:ver:{driver.rid[n]}")
        states = {
            n: json.loads(split_stored(raw)[1])
            for n, raw in zip(driver.numbers, pipe.execute(), strict=True)
        }
        for n in driver.numbers:
            want = "cancelled" if driver.kind[n] == "cancel" else "completed"
            assert states[n]["status"] == want, (n, driver.kind[n], states[n]["status"])

        # every started step was sent exactly once
        sent = outbox(r, account, driver.numbers)
        # sends that waited out a killed worker's in-progress timeout (re-run by another worker)
        recovered = sum(
            1
            for n in driver.numbers
            for m in sent[n]
            if m["channel"] == "sms"
            and datetime.fromisoformat(m["created_at"]).timestamp() - driver.started_at[n] > 12
        )
        for n in driver.numbers:
            channels = sorted(m["channel"] for m in sent[n] if m["request_id"] == driver.rid[n])
            want_channels = ["sms", "voice"] if driver.kind[n] == "two" else ["sms"]
            assert channels == want_channels, (n, driver.rid[n], channels)

        # every summary arrived, and says what happened
        summaries = hooks.summaries()
        for n in driver.numbers:
            rid = driver.rid[n]
            if driver.kind[n] == "cancel":
                assert rid not in summaries  # the Vonage dialect reports no cancel
                continue
            body = summaries[rid].json
            assert body["status"] == "completed", body
            flow = [(s["channel"], s["status"]) for s in body["workflow"]]
            if driver.kind[n] == "two":
                assert flow == [("sms", "expired"), ("voice", "completed")], body
            else:
                assert flow == [("sms", "completed")], body

        # and so was every other webhook message: none undelivered, none given up
        # (a step event whose job a killed worker held comes back after the in-progress
        # timeout, possibly after the summaries: wait for it rather than race it)
        message_ids = [k.decode().removeprefix("vo:wh:") for k in r.scan_iter("vo:wh:*", 1000)]

        def undelivered() -> list[str]:
            accepted = hooks.accepted()
            return [m for m in message_ids if m not in accepted]

        with contextlib.suppress(AssertionError):
            wait_until(lambda: not undelivered(), timeout=60, interval=0.25, what="every message")
        missing = undelivered()
        assert not missing, f"{len(missing)} never delivered, e.g. {missing[:3]}"
        accepted = hooks.accepted()
        given_up = [m.decode() for m in r.zrange("vo:wh-failed", 0, -1)]
        assert not given_up, f"{len(given_up)} given up: " + json.dumps(
            [_history(r, hooks, m) for m in given_up[:3]], indent=1
        )
        duplicates = sum(len(v) - 1 for v in accepted.values())
        stats = {
            "kills": chaos.kills,
            "started_s": round(started_s, 1),
            "acted_s": round(acted_s, 1),
            "done_s": round(done_s, 1),
            "webhook_messages": len(message_ids),
            "duplicate_deliveries": duplicates,
            "sends_recovered_after_kill": recovered,
        }
        (tmp_path / "stats.json").write_text(json.dumps(stats))
        print("kill -9 stats:", json.dumps(stats))
        r.close()

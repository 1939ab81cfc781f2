"""redis-server dies (SIGKILL) and comes back from its AOF while verifications are started.

The test's redis runs with `appendonly yes` (tests/support/processes.py) and, set here through
CONFIG SET, `appendfsync always`: Redis then fsyncs every write before it replies, so a 202 (sent
after the commit's reply) means the verification is on disk. With the default `everysec`, up to
a second of acknowledged writes can be lost by a crash of the machine or of redis-server itself;
operators who need "acknowledged = durable" set `appendfsync always` (see the README).

What must hold: every verification acknowledged with 202 before the crash still exists
afterwards, its code was sent, and checking it completes it (summary webhook delivered); the web
and worker processes reconnect by themselves and keep serving new verifications.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import requests

from tests.support.processes import wait_until

from .helpers import make_app, receiver, redis_client, running_stack, vonage, wait_code


def test_acknowledged_verifications_survive_a_redis_restart(tmp_path: Path) -> None:
    with receiver(tmp_path) as hooks, running_stack(tmp_path / "stack", workers=2) as stack:
        app, account = make_app(stack, hooks.url("/hooks/redis"), tmp_path)
        r = redis_client(stack)
        assert r.config_set("appendfsync", "always")
        api = vonage(stack, app)

        acked: dict[str, str] = {}  # number -> request id, in the order acknowledged
        failures: list[str] = []
        stop = threading.Event()

        def start_many() -> None:
            for i in range(1000):
                if stop.is_set():
                    return
                number = f"4477009{i:05d}"
                body = {"brand": "ACME", "workflow": [{"channel": "sms", "to": number}]}
                try:
                    resp = api.start(body)
                except requests.RequestException as exc:
                    failures.append(type(exc).__name__)
                    time.sleep(0.05)
                    continue
                if resp.status_code == 202:
                    acked[number] = resp.json()["request_id"]
                else:
                    failures.append(str(resp.status_code))
                    time.sleep(0.05)

        starter = threading.Thread(target=start_many, daemon=True)
        starter.start()
        wait_until(lambda: len(acked) >= 60, timeout=60, what="60 acknowledged starts")

        os.kill(stack.redis.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
        stack.redis.proc.wait(10)  # type: ignore[union-attr]
        acked_before = len(acked)  # (a 202 still on its way counts too: all acked are checked)
        time.sleep(1.0)
        stack.redis.start()  # the same port and directory: it replays the AOF
        r.close()
        r = redis_client(stack)
        wait_until(lambda: _ready(r), timeout=30, what="redis to load its AOF")
        r.config_set("appendfsync", "always")

        # the web process reconnects: new starts are acknowledged again
        wait_until(
            lambda: len(acked) >= acked_before + 40,
            timeout=60,
            what="40 acknowledged starts after the restart",
        )
        stop.set()
        starter.join(30)
        assert failures, "the outage should have refused some starts"

        # every acknowledged verification is still there: its code went out and it checks
        for number, rid in acked.items():
            code = wait_code(r, account, number, rid, timeout=45)
            checked = api.check(rid, code)
            assert checked.status_code == 200, (number, rid, checked.text)
        wait_until(
            lambda: set(acked.values()) <= set(hooks.summaries()),
            timeout=60,
            interval=0.25,
            what="a summary webhook for every acknowledged verification",
        )
        assert all(h.json["status"] == "completed" for h in hooks.summaries().values())

        # and the processes are the same ones: they reconnected rather than died
        assert stack.web is not None and stack.web.poll() is None
        assert [w.poll() for w in stack.workers] == [None, None]
        r.close()


def _ready(r: object) -> bool:
    try:
        return bool(r.ping())  # type: ignore[attr-defined]
    except Exception:
        return False

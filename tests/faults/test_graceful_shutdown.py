"""SIGTERM drains: `serve` finishes the requests in flight, a worker finishes its jobs.

- serve: four clients upload their start requests slowly (chunked, ~2 s each); SIGTERM arrives
  while all four are mid-body. The server stops accepting new connections, every one of the four
  gets its 202 (no reset), the verifications exist, and the process exits 0.
- worker: the receiver answers each webhook after 1.5 s; SIGTERM arrives while deliveries are
  in flight. They complete (the receiver answered 204 once per message, the message is marked
  delivered, so no later attempt is needed), the worker takes no new job, and it exits 0.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from tests.support.processes import never, wait_until

from .helpers import (
    make_app,
    receiver,
    redis_client,
    running_stack,
    sms_start,
    vonage,
    wait_code,
)


def test_sigterm_to_serve_drains_slow_requests(tmp_path: Path) -> None:
    with receiver(tmp_path) as hooks, running_stack(tmp_path / "stack") as stack:
        app, account = make_app(stack, hooks.url("/hooks/serve"), tmp_path)
        api = vonage(stack, app)
        mid_body = threading.Barrier(5)
        results: dict[int, requests.Response | Exception] = {}

        def slow_body(i: int) -> Iterator[bytes]:
            body = json.dumps(
                {"brand": "ACME", "workflow": [{"channel": "sms", "to": f"44770090400{i}"}]}
            ).encode()
            yield body[:10]
            mid_body.wait(20)
            for k in range(10, len(body), 8):
                time.sleep(0.1)
                yield body[k : k + 8]

        def client(i: int) -> None:
            try:
                results[i] = api.http.post(
                    stack.url + "/v2/verify",
                    data=slow_body(i),
                    headers={**api.headers(), "Content-Type": "application/json"},
                    timeout=30,
                )
            except Exception as exc:
                results[i] = exc

        clients = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in clients:
            t.start()
        mid_body.wait(20)  # every client has sent its headers and part of its body
        time.sleep(0.3)
        assert stack.web is not None
        stack.web.send_signal(signal.SIGTERM)
        wait_until(
            lambda: not _accepts(stack.port),
            timeout=10,
            what="serve to stop accepting connections",
        )
        for t in clients:
            t.join(30)
        for i in range(4):
            resp = results[i]
            assert isinstance(resp, requests.Response), f"client {i}: {resp!r}"
            assert resp.status_code == 202, resp.text
        assert stack.web.wait(20) == 0

        # the verifications were stored before their 202: the worker sends their codes
        r = redis_client(stack)
        for i in range(4):
            rid = results[i].json()["request_id"]  # type: ignore[union-attr]
            wait_code(r, account, f"44770090400{i}", rid)
        r.close()


def test_sigterm_to_worker_finishes_inflight_webhook_deliveries(tmp_path: Path) -> None:
    with receiver(tmp_path) as hooks, running_stack(tmp_path / "stack") as stack:
        hooks.answer("/hooks/slow", 204, delay=1.5)
        app, account = make_app(stack, hooks.url("/hooks/slow"), tmp_path)
        api = vonage(stack, app)
        r = redis_client(stack)
        number = "447700905001"
        rid = sms_start(api, number)
        checked = api.check(rid, wait_code(r, account, number, rid))
        assert checked.status_code == 200, checked.text
        # the event and the summary are both being delivered: the receiver sits on them
        inflight = wait_until(
            lambda: len(found := hooks.inflight()) == 2 and found,
            timeout=20,
            interval=0.02,
            what="two deliveries in flight",
        )
        ids = {h["headers"]["webhook-id"] for h in inflight}
        worker = stack.workers[0]
        worker.send_signal(signal.SIGTERM)
        sent_at = time.monotonic()
        # a job due after the signal is left for another worker
        later = sms_start(api, "447700905002")
        assert worker.wait(20) == 0
        assert time.monotonic() - sent_at >= 1.0  # it waited for the receiver's answers

        accepted = hooks.accepted("/hooks/slow")
        assert ids <= set(accepted)
        assert all(len(accepted[m]) == 1 for m in ids)
        assert all(r.hget(f"vo:wh:{m}", "delivered_ms") for m in ids)
        assert r.llen(f"vo:outbox:{account}:447700905002") == 0

        # a new worker finds nothing of the old one's to redo, and takes the later job
        stack.start_worker(1)
        wait_code(r, account, "447700905002", later)
        never(
            lambda: any(len(accepted) > 1 for accepted in hooks.accepted().values()),
            within=2.0,
            what="a second delivery of a message the stopped worker delivered",
        )
        r.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False

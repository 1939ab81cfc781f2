"""A provider that hangs or fails: the step fails over to the next channel within its timeout.

Email goes to SMTP on a port where a bare socket listener accepts TCP connections and then
either says nothing at all (a hung server: aiosmtplib waits for a greeting that never comes) or
closes them at once (a failing one); sms is the sandbox. The workflow is email -> sms and the
send timeout is 2 s (VERIFY_SEND_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime
from pathlib import Path

import redis

from tests.support.client import VonageApi
from tests.support.processes import wait_until

from .helpers import make_app, receiver, redis_client, running_stack, vonage, wait_code

SEND_TIMEOUT = 2.0


class SilentSmtp:
    """Accepts connections; `mode` "hang" holds them open silently, "close" drops them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.mode = "hang"
        self.accepted = 0
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.mode == "hang":
                self.held.append(conn)
            else:
                conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_hung_or_failing_email_provider_fails_over_to_sms(tmp_path: Path) -> None:
    smtp = SilentSmtp()
    try:
        with (
            receiver(tmp_path) as hooks,
            running_stack(
                tmp_path / "stack",
                VERIFY_CHANNEL_PROVIDERS__EMAIL="smtp",
                VERIFY_SMTP_HOST="127.0.0.1",
                VERIFY_SMTP_PORT=str(smtp.port),
                VERIFY_SEND_TIMEOUT_SECONDS=str(SEND_TIMEOUT),
            ) as stack,
        ):
            app, account = make_app(stack, hooks.url("/hooks/provider"), tmp_path)
            api = vonage(stack, app)
            r = redis_client(stack)

            def start(number: str, address: str) -> tuple[str, float]:
                workflow = [
                    {"channel": "email", "to": address, "from": "noreply@acme.example"},
                    {"channel": "sms", "to": number},
                ]
                resp = api.start({"brand": "ACME", "workflow": workflow})
                assert resp.status_code == 202, resp.text
                return str(resp.json()["request_id"]), time.time()

            def sms_sent_at(number: str, rid: str) -> float:
                wait_code(r, account, number, rid, timeout=30)
                messages = r.lrange(f"vo:outbox:{account}:{number}", 0, -1)
                assert len(messages) == 1  # the sms only: the email never went anywhere
                return datetime.fromisoformat(_json(messages[0])["created_at"]).timestamp()

            # ---- a hung SMTP server: the email step gives up after the send timeout ----
            hung_rid, started = start("447700903001", "hang@example.test")
            wait_until(lambda: smtp.accepted >= 1, timeout=20, what="the SMTP connection")
            # the worker is not blocked meanwhile: a plain sms goes out at once
            other = "447700903002"
            resp = api.start({"brand": "ACME", "workflow": [{"channel": "sms", "to": other}]})
            assert resp.status_code == 202, resp.text
            other_sent = sms_sent_at(other, resp.json()["request_id"])
            hung_sent = sms_sent_at("447700903001", hung_rid)
            assert other_sent < hung_sent, "a hung provider held up another verification"
            failed_over = hung_sent - started
            # it waited for the timeout (it did try the email), and not much longer
            assert SEND_TIMEOUT - 0.2 <= failed_over <= SEND_TIMEOUT + 6, failed_over
            _complete(api, r, account, "447700903001", hung_rid)

            # ---- an SMTP server that drops the connection: fail over at once ----
            smtp.mode = "close"
            failing_rid, started = start("447700903003", "close@example.test")
            failed_over = sms_sent_at("447700903003", failing_rid) - started
            assert failed_over < SEND_TIMEOUT, failed_over
            _complete(api, r, account, "447700903003", failing_rid)

            for rid in (hung_rid, failing_rid):
                wait_until(lambda rid=rid: rid in hooks.summaries(), what=f"summary of {rid}")
                body = hooks.summaries()[rid].json
                flow = [(s["channel"], s["status"]) for s in body["workflow"]]
                assert body["status"] == "completed"
                assert flow == [("email", "failed"), ("sms", "completed")], body
                events = [
                    hits[0].json
                    for hits in hooks.accepted().values()
                    if hits[0].json["request_id"] == rid and hits[0].json["type"] == "event"
                ]
                assert ("email", "failed") in {(e["channel"], e["status"]) for e in events}
            r.close()
    finally:
        smtp.close()


def _json(raw: bytes) -> dict[str, str]:
    value: dict[str, str] = json.loads(raw)
    return value


def _complete(api: VonageApi, r: redis.Redis, account: str, number: str, rid: str) -> None:
    code = wait_code(r, account, number, rid)
    checked = api.check(rid, code)
    assert checked.status_code == 200, checked.text

"""What the fault tests share: a scriptable webhook receiver, an app on a stack, outbox reads."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import requests

from orchestrator.engine.outbox import read_message
from tests.support.client import TestApp, VonageApi, create_app
from tests.support.processes import Stack, build_stack, free_port, started, wait_until

REPO = Path(__file__).resolve().parents[2]

# fast webhook retries: 6 attempts over ~3.8 s, so the exhausted path is reached within a test
FAST_RETRIES = "[0.3,0.5,1,1,1]"

# the env every fault stack starts from; each test adds its own
FAULT_ENV = {
    "VERIFY_WEBHOOK_RETRY_SCHEDULE": FAST_RETRIES,
    "VERIFY_WEBHOOK_RETRY_JITTER": "0",
    "VERIFY_WEBHOOK_TIMEOUT_SECONDS": "2",
    "VERIFY_SEND_TIMEOUT_SECONDS": "2",
    "VERIFY_WORKER_POLL_DELAY": "0.05",
    "VERIFY_LOG_LEVEL": "WARNING",
    # these tests start hundreds of verifications from one IP to one country: not fraud here
    "VERIFY_FRAUD_ENABLED": "false",
}


@dataclass
class Hit:
    """One request the receiver answered (times are time.time())."""

    path: str
    headers: dict[str, str]
    body: str
    arrived: float
    answered: float
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


class Receiver:
    """A webhook receiver (tests/faults/hookd.py) in its own process, so it answers promptly
    however busy the test process is. `answer(path, status, delay)` changes what it says."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self._answers: dict[str, list[float]] = {}
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self.http = requests.Session()
        self.http.trust_env = False
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.hookd", str(self.port)],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self._up, timeout=20, what="the webhook receiver")

    def _up(self) -> bool:
        try:
            return self.http.get(self.url("/_inflight"), timeout=1).ok
        except requests.RequestException:
            return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, status: int, delay: float = 0.0) -> None:
        """From now on, answer requests to `path` with `status` after `delay` seconds."""
        self._answers[path] = [status, delay]
        resp = self.http.put(self.url("/_policy"), json={"paths": self._answers}, timeout=10)
        resp.raise_for_status()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def snapshot(self, path: str | None = None) -> list[Hit]:
        with self._lock:
            resp = self.http.get(self.url("/_hits"), params={"since": len(self._hits)}, timeout=30)
            resp.raise_for_status()
            self._hits.extend(Hit(**h) for h in resp.json())
            return [h for h in self._hits if path is None or h.path == path]

    def inflight(self) -> list[dict[str, Any]]:
        resp = self.http.get(self.url("/_inflight"), timeout=10)
        resp.raise_for_status()
        found: list[dict[str, Any]] = resp.json()
        return found

    def accepted(self, path: str | None = None) -> dict[str, list[Hit]]:
        """Answered-2xx hits by webhook-id (several: at-least-once duplicates)."""
        out: dict[str, list[Hit]] = {}
        for h in self.snapshot(path):
            if 200 <= h.status < 300:
                out.setdefault(h.webhook_id, []).append(h)
        return out

    def summaries(self, path: str | None = None) -> dict[str, Hit]:
        """The accepted summary webhook of each request id (deduplicated by webhook-id)."""
        found: dict[str, Hit] = {}
        for hits in self.accepted(path).values():
            body = hits[0].json
            if body.get("type") == "summary":
                found[body["request_id"]] = hits[0]
        return found


@contextmanager
def receiver(workdir: Path) -> Iterator[Receiver]:
    workdir.mkdir(parents=True, exist_ok=True)
    r = Receiver(workdir / "hookd.log")
    try:
        yield r
    finally:
        r.stop()


@contextmanager
def running_stack(workdir: Path, workers: int = 1, **env: str) -> Iterator[Stack]:
    """A stack of its own (redis-server, serve, `workers` workers), always torn down."""
    stack = build_stack(workdir, **{**FAULT_ENV, **env})
    try:
        with started(stack, workers):
            yield stack
    finally:
        _kill_restarted_redis(stack)


def _kill_restarted_redis(stack: Stack) -> None:
    """A redis-server a test restarted is a new process the RedisServer object owns again."""
    if stack.redis.proc is not None and stack.redis.proc.poll() is None:
        stack.redis.proc.kill()


def make_app(stack: Stack, status_url: str, workdir: Path) -> tuple[TestApp, str]:
    """An application with `status_url`; returns it and its account sid (the outbox tenant)."""
    app = create_app(stack, "faults", status_url, workdir, hook_path=status_url)
    return app, app.account_sid


def vonage(stack: Stack, app: TestApp) -> VonageApi:
    api = VonageApi(stack.url, app, verify=str(stack.cert))
    # the session `stack` fixture may export REQUESTS_CA_BUNDLE, which would beat our certificate
    api.http.trust_env = False
    return api


def redis_client(stack: Stack) -> redis.Redis:
    return redis.Redis.from_url(stack.redis.url, socket_timeout=10)


def outbox_key(account_sid: str, number: str) -> str:
    digits = "".join(c for c in number if c.isdigit())
    return f"vo:outbox:{account_sid}:{digits}"


def outbox(r: redis.Redis, account_sid: str, numbers: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every sandbox message sent to each number (one pipeline for all of them)."""
    pipe = r.pipeline(transaction=False)
    for n in numbers:
        pipe.lrange(outbox_key(account_sid, n), 0, -1)
    raw = pipe.execute()
    return {n: [read_message(m) for m in msgs] for n, msgs in zip(numbers, raw, strict=True)}


def sms_start(api: VonageApi, to: str, *extra_steps: dict[str, Any]) -> str:
    body = {"brand": "ACME", "workflow": [{"channel": "sms", "to": to}, *extra_steps]}
    resp = api.start(body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["request_id"])


def wait_code(
    r: redis.Redis, account_sid: str, to: str, rid: str, channel: str = "sms", timeout: float = 20
) -> str:
    def find() -> str | None:
        for m in outbox(r, account_sid, [to])[to]:
            if m["request_id"] == rid and m["channel"] == channel:
                return str(m["code"])
        return None

    code: str = wait_until(find, timeout=timeout, interval=0.05, what=f"{channel} code for {rid}")
    return code

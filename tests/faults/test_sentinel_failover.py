"""The Redis primary dies (SIGKILL) mid-traffic; a Sentinel promotes its replica; nothing restarts.

Real processes: a primary (the stack's redis-server), one replica (`--replicaof`), one Sentinel
(`--sentinel`, quorum 1, down-after 1 s, failover-timeout 3 s), and serve and worker started
with VERIFY_REDIS_SENTINELS, so they know the Sentinel only, never an address of a data server.
Two threads start verifications (a new number each time) while the primary is killed.

What must hold:
- every start is answered, within a bound, with 202 or a retryable 503 (Retry-After, the
  dialect's problem+json): never a 500, never a hang;
- with VERIFY_REDIS_WAIT_REPLICAS=1 every 202 was on the replica before it was sent, so none is
  lost: each one's SMS is in the sandbox outbox, read through the API from the new primary;
- the worker follows the failover by itself: starts acknowledged after it are delivered too, by
  the same worker process.

After the promotion the new primary has no replica, so WAIT=1 refuses every start (503, the
WAIT timing out) until one connects: once a few have been refused so, the test starts one
(`--replicaof` the new primary), as an operator would bring the old host back. The WAIT=0 case (run with VERIFY_TEST_SENTINEL_LOSS=1) measures what
async replication loses instead of asserting that nothing is lost; see the README's HA section.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests

from orchestrator.cli.devredis import find_redis_server
from tests.support.processes import build_stack, free_port, started, wait_until

from .helpers import FAULT_ENV, make_app, receiver, vonage

MASTER = "vo-primary"
# no answer may take longer than this (the client's own timeout is 10 s)
ANSWER_BOUND_S = 5.0
# a job running when the primary died is run again once its in-progress key expires: the
# worker's longest job timeout (challenge_expire, 20 s) + 10 s
DELIVERY_BOUND_S = 45.0


def _binary() -> str:
    import shutil

    return shutil.which("redis-server") or find_redis_server()


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([_binary(), *args], stdout=out, stderr=subprocess.STDOUT)


def _replica(port: int, of_port: int, workdir: Path) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    return _spawn(
        ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--save", "",
         "--appendonly", "no", "--replicaof", "127.0.0.1", str(of_port)],
        workdir / "redis.log",
    )  # fmt: skip


def _sentinel(port: int, primary_port: int, workdir: Path) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "sentinel.conf"  # the Sentinel rewrites it: a file of its own
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 1\n"
        f"sentinel down-after-milliseconds {MASTER} 1000\n"
        f"sentinel failover-timeout {MASTER} 3000\n"
    )
    return _spawn([str(conf), "--sentinel"], workdir / "sentinel.log")


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)


def _try(fn):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except redis.RedisError:
        return None


@dataclass
class Traffic:
    """Starts verifications from `threads` threads, one new number each, until stopped."""

    api: object
    acked: dict[str, str] = field(default_factory=dict)  # number -> request id
    acked_at: dict[str, float] = field(default_factory=dict)
    refused: list[tuple[float, str, str]] = field(default_factory=list)  # 503s
    wrong: list[str] = field(default_factory=list)  # anything else: the test fails on it
    slowest: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0

    def number(self) -> str:
        with self._lock:
            self._next += 1
            return f"4477008{self._next:05d}"

    def run(self) -> None:
        while not self.stop.is_set():
            number = self.number()
            body = {"brand": "ACME", "workflow": [{"channel": "sms", "to": number}]}
            began = time.monotonic()
            try:
                resp = self.api.start(body)  # type: ignore[attr-defined]
            except requests.RequestException as exc:
                self.wrong.append(f"{number}: {type(exc).__name__}")
                continue
            took = time.monotonic() - began
            self.slowest = max(self.slowest, took)
            if resp.status_code == 202:
                self.acked[number] = resp.json()["request_id"]
                self.acked_at[number] = time.monotonic()
            elif resp.status_code == 503 and _retryable(resp):
                self.refused.append((time.monotonic(), number, resp.text[:120]))
                time.sleep(0.05)
            else:
                self.wrong.append(f"{number}: {resp.status_code} {resp.text[:200]}")


def _retryable(resp: requests.Response) -> bool:
    return (
        resp.headers.get("Retry-After", "").isdigit()
        and resp.headers.get("Content-Type", "").startswith("application/problem+json")
        and resp.json().get("title") == "Service Unavailable"
    )


def _cases() -> list[object]:
    loss = pytest.mark.skipif(
        not os.environ.get("VERIFY_TEST_SENTINEL_LOSS"),
        reason="measures the async-replication loss; set VERIFY_TEST_SENTINEL_LOSS=1",
    )
    return [pytest.param(1, id="wait-1"), pytest.param(0, id="no-wait", marks=loss)]


@pytest.mark.parametrize("wait_replicas", _cases())
def test_starts_survive_a_sentinel_failover(tmp_path: Path, wait_replicas: int) -> None:
    sentinel_port, replica_port, spare_port = free_port(), free_port(), free_port()
    env = {
        **FAULT_ENV,
        "VERIFY_REDIS_SENTINELS": f"127.0.0.1:{sentinel_port}",
        "VERIFY_REDIS_SENTINEL_MASTER": MASTER,
        "VERIFY_REDIS_WAIT_REPLICAS": str(wait_replicas),
        "VERIFY_REDIS_WAIT_TIMEOUT_SECONDS": "0.5",
    }
    # the stack's redis-server is the primary; serve and the worker start once the Sentinel
    # watches it and its replica, and reach Redis only through the Sentinel
    stack = build_stack(tmp_path / "stack", **env)
    primary = stack.redis
    assert primary.proc is not None
    extra = [
        _replica(replica_port, primary.port, tmp_path / "replica"),
        _sentinel(sentinel_port, primary.port, tmp_path / "sentinel"),
    ]
    sentinel = _client(sentinel_port)
    try:
        wait_until(lambda: _linked(_client(replica_port)), timeout=15, what="the replica in sync")
        wait_until(
            lambda: _try(lambda: sentinel.sentinel_slaves(MASTER)),
            timeout=15,
            what="the Sentinel to see the replica",
        )
        with receiver(tmp_path) as hooks, started(stack):
            app, _ = make_app(stack, hooks.url("/hooks/failover"), tmp_path)
            api = vonage(stack, app)
            traffic = Traffic(api)
            threads = [threading.Thread(target=traffic.run, daemon=True) for _ in range(2)]
            for t in threads:
                t.start()
            wait_until(lambda: len(traffic.acked) >= 60, timeout=30, what="60 starts")

            os.kill(primary.proc.pid, signal.SIGKILL)
            primary.proc.wait(10)
            killed_at = time.monotonic()
            wait_until(
                lambda: _primary_port(sentinel) == replica_port,
                timeout=20,
                interval=0.05,
                what="the Sentinel to promote the replica",
            )
            promoted_at = time.monotonic()
            if wait_replicas:
                # the new primary has no replica yet: WAIT 1 falls short, starts answer 503
                wait_until(
                    lambda: sum(at > promoted_at + 0.6 for at, _, _ in traffic.refused) >= 3,
                    timeout=15,
                    what="starts refused for want of a replica",
                )
                # then bring one up, as an operator would bring the old host back
                extra.append(_replica(spare_port, replica_port, tmp_path / "spare"))
            acked_before = len(traffic.acked)
            wait_until(
                lambda: len(traffic.acked) >= acked_before + 40,
                timeout=20,
                what="40 starts acknowledged by the new primary",
            )
            traffic.stop.set()
            for t in threads:
                t.join(15)

            assert not traffic.wrong, traffic.wrong[:10]  # no 500, no other status, no hang
            assert traffic.slowest < ANSWER_BOUND_S, traffic.slowest
            assert traffic.refused, "the failover should have refused some starts"

            lost = _undelivered(api, traffic.acked)
            after = [n for n, at in traffic.acked_at.items() if at > promoted_at]
            print(
                f"\nfailover: promoted {promoted_at - killed_at:.2f}s after the kill; "
                f"{len(traffic.acked)} acknowledged ({len(after)} after the promotion), "
                f"{len(traffic.refused)} answered 503, slowest answer {traffic.slowest:.2f}s, "
                f"{len(lost)} acknowledged starts lost"
            )
            # the worker followed the failover: what the new primary acknowledged was sent
            assert after and not set(after) & set(lost), sorted(set(after) & set(lost))
            if wait_replicas:
                assert not lost, lost  # WAIT: every 202 was on the replica that took over
                log = (stack.workdir / "web.log").read_text()
                assert "0 of 1 replicas acknowledged" in log  # those 503s: WAIT fell short
                promoted = _client(replica_port)
                waits = promoted.info("commandstats").get("cmdstat_wait", {})
                promoted.close()
                assert waits.get("calls", 0) > 0  # the new primary ran WAIT for its starts
            assert stack.web is not None and stack.web.poll() is None
            assert [w.poll() for w in stack.workers] == [None]
    finally:
        sentinel.close()
        for proc in extra:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def _linked(replica: redis.Redis) -> bool:
    info = _try(lambda: replica.info("replication"))
    replica.close()
    return bool(info) and info.get("master_link_status") == "up"


def _primary_port(sentinel: redis.Redis) -> int | None:
    found = _try(lambda: sentinel.sentinel_get_master_addr_by_name(MASTER))
    return int(found[1]) if found else None


def _undelivered(api: object, acked: dict[str, str]) -> list[str]:
    """The acknowledged starts whose SMS never reached the outbox (read through the API, so
    from the new primary), after waiting for jobs that were running when the primary died."""
    waiting = dict(acked)
    deadline = time.monotonic() + DELIVERY_BOUND_S
    while waiting and time.monotonic() < deadline:
        for number, rid in list(waiting.items()):
            try:
                messages = api.messages(number)  # type: ignore[attr-defined]
            except requests.RequestException:
                continue
            if any(m["request_id"] == rid and m["channel"] == "sms" for m in messages):
                del waiting[number]
        if waiting:
            time.sleep(0.5)
    return sorted(waiting)

"""Webhook-driven phases: the full silent-auth flow, and raw webhook delivery throughput of one worker."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid

import aiohttp
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.engine import jobs
from orchestrator.engine.store import WEBHOOK_TTL_MS

from .client import basic_header, jwt_headers
from .cpu import CpuMeter
from .phases import cpu_report
from .procs import BenchError, Procs
from .queue import drain
from .receiver import Receiver
from .stack import App
from .stats import summary_ms

__all__ = ["silent_auth_flow", "webhook_throughput"]

WAIT_S = 10.0
GIVE_UP_AFTER = 3


def _even_magic(i: int, offset: int) -> str:
    """A 990… sandbox number ending in 0: its silent-auth device check completes."""
    return f"990{(offset + i) % 10**8:08d}0"


async def silent_auth_flow(
    http: aiohttp.ClientSession,
    service_url: str,
    app: App,
    receiver: Receiver,
    n: int,
) -> dict[str, object]:
    """`n` sequential flows: JWT start → check_url hops → code → check → summary webhook."""
    tokens = jwt_headers(app.application_id, app.private_key_path, n)
    basic = basic_header(app.api_key, app.api_secret)
    offset = random.randrange(10**8)
    flow_ms: list[float] = []
    parts: dict[str, list[float]] = {"start": [], "check_url": [], "check": [], "webhook": []}
    problems: dict[str, int] = {}
    failed_in_row = 0

    def problem(label: str) -> None:
        nonlocal failed_in_row
        problems[label] = problems.get(label, 0) + 1
        failed_in_row += 1
        if failed_in_row >= GIVE_UP_AFTER:
            raise BenchError(f"silent-auth flow failed {failed_in_row} times in a row: {problems}")

    for i in range(n):
        body = json.dumps(
            {
                "brand": "Bench",
                "workflow": [{"channel": "silent_auth", "to": _even_magic(i, offset)}],
            }
        ).encode()
        headers = {"Authorization": tokens[i], "Content-Type": "application/json"}
        t0 = time.perf_counter()
        async with http.post(service_url + "/v2/verify", data=body, headers=headers) as resp:
            started = await resp.json() if resp.status == 202 else None
            status = resp.status
        t1 = time.perf_counter()
        if started is None:
            problem(f"start {status}")
            continue
        request_id = str(started["request_id"])
        summary = receiver.expect_summary(request_id)
        async with http.get(started["check_url"], allow_redirects=True) as resp:
            device = await resp.json() if resp.status == 200 else None
            status = resp.status
        t2 = time.perf_counter()
        if device is None or device.get("request_id") != request_id:
            receiver.forget(request_id)
            problem(f"check_url {status}")
            continue
        check = json.dumps({"code": device["code"]}).encode()
        async with http.post(
            f"{service_url}/v2/verify/{request_id}",
            data=check,
            headers={"Authorization": basic, "Content-Type": "application/json"},
        ) as resp:
            await resp.read()
            status = resp.status
        t3 = time.perf_counter()
        if status != 200:
            receiver.forget(request_id)
            problem(f"check {status}")
            continue
        try:
            arrived = await asyncio.wait_for(summary, WAIT_S)
        except TimeoutError:
            receiver.forget(request_id)
            problem("summary webhook timeout")
            continue
        failed_in_row = 0
        flow_ms.append((arrived - t0) * 1000)
        parts["start"].append((t1 - t0) * 1000)
        parts["check_url"].append((t2 - t1) * 1000)
        parts["check"].append((t3 - t2) * 1000)
        parts["webhook"].append((arrived - t3) * 1000)
    return {
        "flow": summary_ms(flow_ms),
        "parts": {k: summary_ms(v) for k, v in parts.items()},
        "webhooks_received": dict(receiver.kinds),
        "problems": problems,
    }


def _summary_body(request_id: str) -> str:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    body = {
        "request_id": request_id,
        "submitted_at": now,
        "status": "completed",
        "type": "summary",
        "channel_timeout": 300,
        "workflow": [{"channel": "silent_auth", "initiated_at": now, "status": "completed"}],
    }
    return json.dumps(body, separators=(",", ":"))


async def webhook_throughput(
    redis: Redis,
    procs: Procs,
    meter: CpuMeter,
    app: App,
    receiver: Receiver,
    n: int,
) -> dict[str, object]:
    """Enqueue `n` webhook messages as a commit's Emit does, wake the worker, time the deliveries."""
    await drain(redis, procs)
    receiver.parse = False
    base = receiver.count
    now_ms = int(time.time() * 1000)
    expires = str(jobs.EXPIRES_EXTRA_MS)
    pipe = redis.pipeline(transaction=False)
    for _ in range(n):
        rid = str(uuid.uuid4())
        mid = f"msg_{rid.replace('-', '')}_1"
        key = constants.WEBHOOK_PREFIX + mid
        pipe.hset(
            key,
            mapping={
                "tenant": app.application_id,
                "request_id": rid,
                "body": _summary_body(rid),
                "kind": "summary",
                "created_ms": str(now_ms),
                "dialect": "vonage",
            },
        )
        pipe.pexpire(key, WEBHOOK_TTL_MS)
        job_id = jobs.webhook_job_id(mid, 1)
        record = jobs.serialize_job(jobs.DELIVER_WEBHOOK, [mid, 1], now_ms)
        pipe.set(jobs.job_key(job_id), record, px=int(expires), nx=True)
        pipe.zadd(jobs.QUEUE, {job_id: now_ms})
    done = receiver.expect_count(base + n)
    a = meter.snap()
    t0 = time.perf_counter()
    await pipe.execute()
    t_enqueued = time.perf_counter()
    await redis.publish(constants.WAKE_CHANNEL, "1")
    try:
        while not done.done():
            procs.check_alive()
            await asyncio.wait({done}, timeout=0.5)
            if time.perf_counter() - t0 > 120:
                raise BenchError(f"only {receiver.count - base} of {n} webhooks arrived in 120 s")
        finished = done.result()
    finally:
        receiver.parse = True
    b = meter.snap()
    elapsed = finished - t0
    deliver = finished - t_enqueued
    return {
        "n": n,
        "enqueue_s": round(t_enqueued - t0, 3),
        "elapsed_s": round(elapsed, 3),
        "webhooks_per_s": round(n / elapsed, 1),
        "webhooks_per_s_after_enqueue": round(n / deliver, 1),
        "worker_processes": 1,
        **cpu_report(meter, a, b, n),
    }

"""The system under test, started from scratch: redis-server, floor app, `serve`, `worker`, an app."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator.constants import WAKE_CHANNEL

from .procs import BenchError, Procs, free_port

__all__ = ["REDIS_NOTE", "Stack", "start_stack"]

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "orchestrator.cli"]
SECRET_KEY = "bench-fixed-secret-key-0123456789abcdef"  # noqa: S105 - a throwaway Redis
KEYSPACE_EVENTS = "Kl"  # keyspace events for list commands: LPUSH into an outbox list
REDIS_NOTE = (
    "redis-server started by the bench with --save '' --appendonly no (no persistence: "
    "production runs AOF, which adds write cost not measured here) and "
    f"notify-keyspace-events={KEYSPACE_EVENTS}"
)


@dataclass
class App:
    application_id: str
    api_key: str
    api_secret: str
    private_key_path: Path


@dataclass
class Stack:
    procs: Procs
    redis_url: str
    redis_pid: int
    redis_version: str
    redis_allocator: str
    service_url: str
    floor_url: str
    app: App  # no status URL: its starts send no webhooks
    wh_app: App  # status URL = the bench's webhook receiver
    redis: Redis


Probe = Callable[[], Awaitable[bool]]


async def _wait(what: str, probe: Probe, procs: Procs, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        procs.check_alive()
        try:
            if await probe():
                return
        except (OSError, aiohttp.ClientError, RedisError):
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {limit_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


def _service_env(redis_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFY_")}
    env.update(
        {
            "VERIFY_REDIS_URL": redis_url,
            "VERIFY_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "VERIFY_SANDBOX": "true",
            "VERIFY_SECRET_KEY": SECRET_KEY,
            "VERIFY_LOG_LEVEL": "WARNING",
            # the fraud guard stays on (its cost is measured) with limits the load never reaches
            "VERIFY_FRAUD_NUMBER_LIMIT": "1000000",
            "VERIFY_FRAUD_IP_LIMIT": "100000000",
            "VERIFY_FRAUD_PREFIX_FLOOR": "100000000",
            # the webhook receiver the bench runs listens on 127.0.0.1
            "VERIFY_WEBHOOK_ALLOW_PRIVATE": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


async def _start_redis(procs: Procs, workdir: Path) -> tuple[str, Redis]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not on PATH (apt-get install redis-server)")
    port = free_port()
    data = workdir / "redis"
    data.mkdir()
    procs.spawn(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
         "--save", "", "--appendonly", "no"],
        dict(os.environ),
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    redis = Redis.from_url(url)

    async def ping() -> bool:
        return bool(await redis.ping())

    await _wait("redis-server", ping, procs)
    await redis.config_set("notify-keyspace-events", KEYSPACE_EVENTS)
    return url, redis


async def _create_app(
    env: dict[str, str], workdir: Path, name: str = "bench", status_url: str = ""
) -> App:
    key_path = workdir / f"{name}-app.key"
    extra = ["--status-url", status_url] if status_url else []
    proc = await asyncio.create_subprocess_exec(
        *CLI, "apps", "create", "--name", name, "--private-key-out", str(key_path), *extra,
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    if proc.returncode != 0:
        raise BenchError(f"apps create failed ({proc.returncode}): {err.decode()[-800:]}")
    data = json.loads(out)
    return App(
        application_id=data["application_id"],
        api_key=data["api_key"],
        api_secret=data["api_secret"],
        private_key_path=Path(data["private_key_path"]),
    )


async def start_stack(
    procs: Procs, workdir: Path, http: aiohttp.ClientSession, status_url: str
) -> Stack:
    redis_url, redis = await _start_redis(procs, workdir)
    port, floor_port = free_port(), free_port()
    env = _service_env(redis_url, port)
    procs.spawn("serve", [*CLI, "serve", "--port", str(port)], env)
    procs.spawn("worker", [*CLI, "worker"], env)
    procs.spawn(
        "floor",
        [sys.executable, "-m", "bench.floor", "--port", str(floor_port), "--redis-url", redis_url],
        env,
    )
    app, wh_app = await asyncio.gather(
        _create_app(env, workdir), _create_app(env, workdir, "bench-webhooks", status_url)
    )
    service_url, floor_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{floor_port}"

    def healthy(url: str) -> Probe:
        async def probe() -> bool:
            async with http.get(url + "/health") as resp:
                return resp.status == 200

        return probe

    async def worker_listening() -> bool:
        # the worker subscribes to the wake-up channel once it is ready to take jobs
        numsub = await redis.pubsub_numsub(WAKE_CHANNEL)
        return bool(numsub and numsub[0][1] >= 1)

    await _wait("serve /health", healthy(service_url), procs)
    await _wait("floor /health", healthy(floor_url), procs)
    await _wait(f"worker subscribed to {WAKE_CHANNEL}", worker_listening, procs)
    server = await redis.info("server")
    memory = await redis.info("memory")
    return Stack(
        procs=procs,
        redis_url=redis_url,
        redis_pid=int(server["process_id"]),
        redis_version=str(server["redis_version"]),
        redis_allocator=str(memory.get("mem_allocator", "?")),
        service_url=service_url,
        floor_url=floor_url,
        app=app,
        wh_app=wh_app,
        redis=redis,
    )

"""Runs the phases in order against one freshly started stack; a failed phase is reported, not fatal."""

from __future__ import annotations

import os
import subprocess
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from .client import VerifyClient, basic_header
from .config import Plan
from .cpu import CpuMeter
from .delivery import provider_sends
from .flows import silent_auth_flow, webhook_throughput
from .latency import start_to_outbox
from .memory import memory_per_pending
from .numbers import Numbers
from .pending import start_by_pending
from .phases import Ctx, checks_phase, floor_phase, jwt_phase, starts_phase
from .procs import BenchError, Procs
from .profile import profile_phase
from .receiver import Receiver
from .stack import REDIS_NOTE, REPO, start_stack

__all__ = ["run"]


def _commit() -> str | None:
    """Read-only: the commit the tree is on (others may have uncommitted edits in it)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO, capture_output=True, text=True, timeout=5, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _loadavg() -> str | None:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return None


async def _phase(
    phases: dict[str, Any], name: str, fn: Callable[[], Awaitable[dict[str, object]]]
) -> None:
    t0 = time.perf_counter()
    print(f"  … {name}", flush=True)
    try:
        phases[name] = await fn()
    except BenchError as exc:
        phases[name] = {"error": str(exc)}
    except Exception as exc:
        phases[name] = {"error": f"{type(exc).__name__}: {exc}"}
        traceback.print_exc()
    phases[name]["phase_s"] = round(time.perf_counter() - t0, 2)


async def run(
    plan: Plan, procs: Procs, results_dir: Path, *, profile: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    meta: dict[str, Any] = {
        "mode": plan.name,
        "concurrency": plan.concurrency,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "cpus": os.cpu_count(),
        "loadavg": _loadavg(),
        "redis_note": REDIS_NOTE,
        "plan": plan.__dict__,
    }
    phases: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(limit=plan.concurrency + 4)
    timeout = aiohttp.ClientTimeout(total=30)
    receiver = Receiver()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        print("  … starting redis-server, serve, worker, floor; creating the apps", flush=True)
        t0 = time.perf_counter()
        status_url = await receiver.start()
        try:
            stack = await start_stack(procs, procs.workdir, http, status_url)
        except BaseException:
            await receiver.stop()
            raise
        meta["startup_s"] = round(time.perf_counter() - t0, 2)
        meta["redis_version"] = stack.redis_version
        meta["redis_allocator"] = stack.redis_allocator
        meter = CpuMeter()
        meter.track("serve", procs.running["serve"].pid)
        meter.track("worker", procs.running["worker"].pid)
        meter.track("redis", stack.redis_pid)
        meter.track("floor", procs.running["floor"].pid)
        app = stack.app
        auth = basic_header(app.api_key, app.api_secret)
        ctx = Ctx(
            stack=stack,
            plan=plan,
            meter=meter,
            numbers=Numbers(),
            api=VerifyClient(http, stack.service_url, auth),
            floor=VerifyClient(http, stack.floor_url, auth),
        )
        try:
            await _phase(phases, "floor", lambda: floor_phase(ctx))
            # before the load phases leave thousands of real pending verifications behind
            await _phase(
                phases,
                "pending",
                lambda: start_by_pending(
                    stack, ctx.api, ctx.floor, ctx.numbers, plan.pending_levels, plan.pending_n
                ),
            )
            await _phase(phases, "starts", lambda: starts_phase(ctx))
            await _phase(phases, "checks", lambda: checks_phase(ctx))
            await _phase(
                phases,
                "latency",
                lambda: start_to_outbox(ctx.api, stack.redis, ctx.numbers, plan.latency_n),
            )
            await _phase(
                phases,
                "silent_auth",
                lambda: silent_auth_flow(
                    http, stack.service_url, stack.wh_app, receiver, plan.silent_n
                ),
            )
            await _phase(
                phases,
                "webhooks",
                lambda: webhook_throughput(
                    stack.redis, procs, meter, stack.wh_app, receiver, plan.webhooks_n
                ),
            )
            await _phase(
                phases,
                "memory",
                lambda: memory_per_pending(
                    ctx.api, stack.redis, procs, ctx.numbers, plan.memory_n, plan.concurrency,
                ),
            )  # fmt: skip
            await _phase(phases, "jwt", lambda: jwt_phase(ctx))
            await _phase(
                phases, "providers", lambda: provider_sends(stack.redis, plan.provider_sends_n)
            )
            if profile:
                await _phase(phases, "profile", lambda: profile_phase(ctx, results_dir))
        finally:
            await stack.redis.aclose()
    await receiver.stop()
    meta["loadavg_end"] = _loadavg()
    return meta, phases

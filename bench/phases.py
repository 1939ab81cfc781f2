"""The load phases: floor, verify starts, wrong-code checks, and Basic vs JWT starts."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from orchestrator.domain.policy import MAX_CODE_ATTEMPTS

from .client import WRONG_CODE, VerifyClient, jwt_headers
from .config import Plan
from .cpu import CpuMeter, CpuSnapshot
from .load import LoadResult, Op, closed_loop
from .numbers import Numbers
from .queue import drain, due_jobs
from .stack import Stack

__all__ = ["Ctx", "checks_phase", "floor_phase", "jwt_phase", "starts_op", "starts_phase"]


@dataclass
class Ctx:
    stack: Stack
    plan: Plan
    meter: CpuMeter
    numbers: Numbers
    api: VerifyClient
    floor: VerifyClient
    started: list[str] = field(default_factory=list)  # request ids still pending, for checks


def cpu_report(meter: CpuMeter, a: CpuSnapshot, b: CpuSnapshot, ops: int) -> dict[str, object]:
    cpu = CpuMeter.delta(a, b)
    per_op = {
        name: round(cpu[name] * 1000 / ops, 3)  # type: ignore[operator]
        for name in meter.pids
        if ops and cpu.get(name) is not None
    }
    return {"cpu_s": cpu, "cpu_ms_per_op": per_op}


async def _measured(
    ctx: Ctx, run: Callable[[], Awaitable[LoadResult]]
) -> tuple[LoadResult, dict[str, object]]:
    a = ctx.meter.snap()
    result = await run()
    b = ctx.meter.snap()
    return result, {"load": result.summary(), **cpu_report(ctx.meter, a, b, result.ok)}


def starts_op(ctx: Ctx, auth: Callable[[], str] | None = None) -> Op:
    async def op() -> str:
        status, request_id = await ctx.api.start(ctx.numbers.next(), auth() if auth else None)
        if request_id is not None:
            ctx.started.append(request_id)
        return str(status)

    return op


async def floor_phase(ctx: Ctx) -> dict[str, object]:
    numbers = Numbers()  # the floor keeps no state per number: any body of the same shape does

    async def op() -> str:
        status, _ = await ctx.floor.start(numbers.next())
        return str(status)

    plan = ctx.plan
    await closed_loop(op, concurrency=plan.concurrency, ok={"202"}, count=plan.warmup)
    _, out = await _measured(
        ctx,
        lambda: closed_loop(op, concurrency=plan.concurrency, ok={"202"}, duration_s=plan.floor_s),
    )
    return out


async def starts_phase(ctx: Ctx) -> dict[str, object]:
    """Closed-loop starts with the worker sending meanwhile; then the drain of what it left."""
    plan, redis, procs = ctx.plan, ctx.stack.redis, ctx.stack.procs
    op = starts_op(ctx)
    await closed_loop(op, concurrency=plan.concurrency, ok={"202"}, count=plan.warmup)
    await drain(redis, procs)
    a = ctx.meter.snap()
    result, out = await _measured(
        ctx,
        lambda: closed_loop(op, concurrency=plan.concurrency, ok={"202"}, duration_s=plan.starts_s),
    )
    backlog = await due_jobs(redis)
    sends = result.ok - backlog
    out["worker_sends_per_s_during_load"] = round(sends / result.elapsed_s, 1)
    drained = await drain(redis, procs)
    out["drain_after"] = drained
    # what web + worker together sustain: every start accepted AND its SMS in the outbox
    out["sustained_starts_per_s"] = round(result.ok / (result.elapsed_s + drained["drain_s"]), 1)
    b = ctx.meter.snap()
    # the whole cost of a start: web, Redis and the worker's send, until nothing is left to do
    out["incl_drain"] = cpu_report(ctx.meter, a, b, result.ok)
    return out


async def checks_phase(ctx: Ctx) -> dict[str, object]:
    """Wrong codes (400) against started verifications, each at most MAX-1 times so none ends."""
    tickets = [rid for _ in range(MAX_CODE_ATTEMPTS - 1) for rid in ctx.started]
    ctx.started = []
    position = 0

    async def op() -> str:
        nonlocal position
        if position >= len(tickets):
            return "exhausted"
        request_id = tickets[position]
        position += 1
        return str(await ctx.api.check(request_id, WRONG_CODE))

    plan = ctx.plan
    _, out = await _measured(
        ctx,
        lambda: closed_loop(op, concurrency=plan.concurrency, ok={"400"}, duration_s=plan.checks_s),
    )
    out["ids_available"] = len(tickets) // max(1, MAX_CODE_ATTEMPTS - 1)
    out["exhausted"] = position >= len(tickets)
    return out


async def jwt_phase(ctx: Ctx) -> dict[str, object]:
    """The same count of Basic then JWT starts, back to back; tokens are signed before timing."""
    plan, redis, procs, app = ctx.plan, ctx.stack.redis, ctx.stack.procs, ctx.stack.app
    t0 = time.perf_counter()
    tokens = jwt_headers(app.application_id, app.private_key_path, plan.jwt_n)
    sign_s = time.perf_counter() - t0
    out: dict[str, object] = {"tokens_signed_in_s": round(sign_s, 3)}
    await drain(redis, procs)
    _, out["basic"] = await _measured(
        ctx,
        lambda: closed_loop(
            starts_op(ctx), concurrency=plan.concurrency, ok={"202"}, count=plan.jwt_n
        ),
    )
    await drain(redis, procs)
    it = iter(tokens)
    _, out["jwt"] = await _measured(
        ctx,
        lambda: closed_loop(
            starts_op(ctx, lambda: next(it)), concurrency=plan.concurrency, ok={"202"},
            count=plan.jwt_n,
        ),
    )  # fmt: skip
    await drain(redis, procs)
    return out

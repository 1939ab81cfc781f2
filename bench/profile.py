"""Optional (`--profile`): py-spy samples `serve` and `worker` during a starts run.

Writes collapsed stacks (flamegraph.pl / speedscope can read them) to bench/results/ and
summarizes the hottest frames, inclusive and self, so a hotspot shows up in the report.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections import Counter
from pathlib import Path

from .load import closed_loop
from .phases import Ctx, starts_op
from .queue import drain

__all__ = ["profile_phase", "summarize_collapsed"]

_LINE = re.compile(r":\d+\)$")
_SITE = re.compile(r"\(.*/(site-packages|lib/python3\.\d+)/")
_OURS = ("orchestrator/", "workers/", "arq/worker.py")


def _frame(raw: str) -> str:
    """`fn (/abs/path/pkg/file.py:123)` -> `fn (pkg/file.py)`."""
    return _SITE.sub("(", _LINE.sub(")", raw.strip())).replace("/work/main/", "")


def _name(frame: str) -> str:
    return frame.split(" (", 1)[0]


def summarize_collapsed(path: Path, top: int = 12) -> dict[str, object]:
    """Self time per frame, and samples grouped by the innermost project frames on the stack.

    Grouping by project caller shows *which of our code paths* the time (including time spent
    in libraries and syscalls below them) belongs to; `socket_write_pct` is the share of samples
    inside a socket write, i.e. the syscall cost of round trips and responses.
    """
    own: Counter[str] = Counter()
    by_caller: Counter[str] = Counter()
    writes = 0
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [_frame(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        if "SocketTransport.write" in frames[-1]:
            writes += count
        ours = [_name(f) for f in frames if any(m in f for m in _OURS) and "cli.py" not in f]
        by_caller[" > ".join(ours[-2:]) or "(library / event loop only)"] += count

    def share(c: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in c.most_common(top)] if total else []

    return {
        "samples": total,
        "socket_write_pct": round(100 * writes / total, 1) if total else None,
        "by_project_caller_pct": share(by_caller),
        "self_pct": share(own),
    }


async def profile_phase(ctx: Ctx, out_dir: Path) -> dict[str, object]:
    spy = shutil.which("py-spy")
    if spy is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    plan, procs = ctx.plan, ctx.stack.procs
    seconds = max(1, round(plan.profile_s))
    spies: dict[str, tuple[asyncio.subprocess.Process, Path]] = {}
    for name in ("serve", "worker"):
        out = out_dir / f"profile-{name}.collapsed.txt"
        proc = await asyncio.create_subprocess_exec(
            spy, "record", "--pid", str(procs.running[name].pid), "--duration", str(seconds),
            "--rate", "100", "--nonblocking", "--format", "raw", "-o", str(out),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        spies[name] = (proc, out)
    await asyncio.sleep(0.5)  # let py-spy attach before the load starts
    result = await closed_loop(
        starts_op(ctx), concurrency=plan.concurrency, ok={"202"}, duration_s=seconds - 0.5
    )
    report: dict[str, object] = {"load": result.summary(), "note": "py-spy perturbs these numbers"}
    for name, (proc, out) in spies.items():
        _, err = await proc.communicate()
        if proc.returncode != 0 or not out.exists():
            report[name] = {"error": err.decode(errors="replace")[-400:]}
            continue
        report[name] = {"file": str(out), **summarize_collapsed(out)}
    await drain(ctx.stack.redis, procs)
    return report

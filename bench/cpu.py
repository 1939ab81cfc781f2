"""CPU accounting from /proc: seconds each of our processes used, and what everyone else used.

The machine is shared (other engineers run test suites on the same 2 cores), so every phase
reports `foreign_cores`: busy CPU not spent by the bench's own processes, averaged over the phase.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

__all__ = ["CpuMeter", "CpuSnapshot"]

_CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of one process in seconds; None when it is gone or /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            raw = fh.read()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK


def system_busy_s() -> float | None:
    """Busy CPU seconds of the whole machine (all cores) since boot."""
    try:
        with open("/proc/stat") as fh:
            first = fh.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLK


@dataclass(frozen=True)
class CpuSnapshot:
    wall: float
    busy: float | None
    procs: dict[str, float | None]


class CpuMeter:
    """Snapshots of named pids (plus this process as `bench`) and the machine's busy time."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {"bench": os.getpid()}

    def track(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def snap(self) -> CpuSnapshot:
        procs = {name: proc_cpu_s(pid) for name, pid in self.pids.items()}
        return CpuSnapshot(time.perf_counter(), system_busy_s(), procs)

    @staticmethod
    def delta(a: CpuSnapshot, b: CpuSnapshot) -> dict[str, float | None]:
        """CPU seconds per process over a..b, `foreign_cores` and `wall_s`."""
        out: dict[str, float | None] = {}
        own = 0.0
        for name, before in a.procs.items():
            after = b.procs.get(name)
            if before is None or after is None:
                out[name] = None
                continue
            out[name] = round(after - before, 3)
            own += after - before
        wall = b.wall - a.wall
        out["wall_s"] = round(wall, 3)
        if a.busy is not None and b.busy is not None and wall > 0:
            out["foreign_cores"] = round(max(0.0, (b.busy - a.busy) - own) / wall, 2)
        else:
            out["foreign_cores"] = None
        return out

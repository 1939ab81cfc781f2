"""`python -m bench [--quick] [--profile] [--plot | --plot-only]`: see bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import FrameType

from .config import DEFAULT, QUICK
from .plot import plot
from .procs import BenchError, Procs
from .report import print_report, summarize, write_results
from .runner import run
from .stack import REPO

RESULTS = REPO / "bench" / "results"
PLOT = REPO / "docs" / "bench-latency.png"


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwind like Ctrl-C, so every process is stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run, under 60 s")
    parser.add_argument(
        "--profile", action="store_true", help="add a py-spy run over serve and worker"
    )
    parser.add_argument("--concurrency", type=int, help="closed-loop connections (default 32)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--plot", action="store_true", help=f"after the run, plot latest.json to {PLOT}"
    )
    parser.add_argument(
        "--plot-only", action="store_true", help="no run: plot the existing latest.json"
    )
    args = parser.parse_args(argv)
    if args.plot_only:
        print(f"plot: {plot(args.results_dir / 'latest.json', PLOT)}")
        return 0
    plan = QUICK if args.quick else DEFAULT
    if args.concurrency:
        plan = plan.__class__(**{**plan.__dict__, "concurrency": args.concurrency})
    signal.signal(signal.SIGTERM, _sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="verify-bench-"))
    procs = Procs(workdir, REPO)
    t0 = time.perf_counter()
    keep_logs = True  # until the run ends cleanly or is interrupted
    try:
        meta, phases = asyncio.run(run(plan, procs, args.results_dir, profile=args.profile))
        ok = not any(isinstance(p, dict) and "error" in p for p in phases.values())
        keep_logs = not ok
    except KeyboardInterrupt:
        keep_logs = False
        print("\ninterrupted: stopped every process the bench started", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"\nbench failed: {exc}\n(process logs kept in {workdir})", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print(f"\nbench failed (process logs kept in {workdir})", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        if not keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
    meta["wall_s"] = round(time.perf_counter() - t0, 1)
    summary = summarize(meta, phases)
    summary["wall_s"] = meta["wall_s"]
    print_report(meta, phases, summary)
    path = write_results(args.results_dir, {"summary": summary, "meta": meta, "phases": phases})
    print(f"\nfull results: {path}" + ("" if ok else f"; process logs kept in {workdir}"))
    if args.plot:
        print(f"plot: {plot(path, PLOT)}")
    print(json.dumps(summary, separators=(",", ":")))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""The readable table, the summary (last line of output) and bench/results/latest.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["print_report", "summarize", "write_results"]

CPU_COLUMNS = ("serve", "worker", "redis", "floor", "bench")


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _ratio(a: Any, b: Any, digits: int = 3) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return round(a / b, digits)
    return None


def summarize(meta: dict[str, Any], phases: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers; None wherever a phase did not run or did not measure it."""
    starts = _get(phases, "starts", "load", "per_s")
    floor = _get(phases, "floor", "load", "per_s")
    basic = _get(phases, "jwt", "basic", "load", "per_s")
    jwt = _get(phases, "jwt", "jwt", "load", "per_s")
    foreign = [
        v
        for p in phases.values()
        if isinstance(v := _get(p, "cpu_s", "foreign_cores"), int | float)
    ]
    by_pending = _get(phases, "pending", "by_pending")
    by_pending = by_pending if isinstance(by_pending, dict) else {}
    floor_seq = _get(phases, "pending", "floor_sequential", "p50_ms")
    return {
        "starts_per_s": starts,
        "floor_per_s": floor,
        "ratio": _ratio(starts, floor),
        "checks_per_s": _get(phases, "checks", "load", "per_s"),
        "sustained_starts_per_s": _get(phases, "starts", "sustained_starts_per_s"),
        "start_to_outbox_p50_ms": _get(phases, "latency", "start_to_outbox", "p50_ms"),
        "start_to_outbox_p99_ms": _get(phases, "latency", "start_to_outbox", "p99_ms"),
        "silent_auth_flow_p50_ms": _get(phases, "silent_auth", "flow", "p50_ms"),
        "silent_auth_flow_p99_ms": _get(phases, "silent_auth", "flow", "p99_ms"),
        "webhooks_per_s": _get(phases, "webhooks", "webhooks_per_s"),
        "start_p50_ms_by_pending": {k: v.get("p50_ms") for k, v in by_pending.items()} or None,
        "start_p99_ms_by_pending": {k: v.get("p99_ms") for k, v in by_pending.items()} or None,
        "floor_sequential_p50_ms": floor_seq,
        "redis_bytes_per_pending": _get(phases, "memory", "bytes_per_pending"),
        "verification_hash_bytes": _get(
            phases, "memory", "one_verification", "verification_hash_bytes"
        ),
        "start_p50_ms_at_c": _get(phases, "starts", "load", "latency", "p50_ms"),
        "start_p99_ms_at_c": _get(phases, "starts", "load", "latency", "p99_ms"),
        "worker_sends_per_s_during_load": _get(phases, "starts", "worker_sends_per_s_during_load"),
        "send_backlog_at_end_of_load": _get(phases, "starts", "drain_after", "backlog"),
        "outbox_lag_at_end_of_load_s": _get(phases, "starts", "drain_after", "drain_s"),
        "cpu_ms_per_start": _get(phases, "starts", "incl_drain", "cpu_ms_per_op"),
        "jwt_starts_per_s": jwt,
        "basic_starts_per_s_same_n": basic,
        "jwt_vs_basic": _ratio(jwt, basic),
        "smpp_sends_per_s": _get(phases, "providers", "smpp_sends_per_s"),
        "sandbox_sends_per_s": _get(phases, "providers", "sandbox_sends_per_s"),
        "smpp_to_sandbox": _get(phases, "providers", "smpp_to_sandbox"),
        "foreign_cores_avg": round(sum(foreign) / len(foreign), 2) if foreign else None,
        "mode": meta.get("mode"),
        "concurrency": meta.get("concurrency"),
        "commit": meta.get("commit"),
        "errors": [k for k, p in phases.items() if isinstance(p, dict) and "error" in p] or None,
    }


def _fmt(value: Any, width: int, digits: int = 1) -> str:
    if value is None:
        return "-".rjust(width)
    if isinstance(value, float):
        return f"{value:,.{digits}f}".rjust(width)
    return str(value).rjust(width)


def _row(label: str, phase: Any) -> str:
    if not isinstance(phase, dict):
        return f"{label:<30} (not run)"
    if "error" in phase:
        return f"{label:<30} ERROR: {phase['error']}"
    load = phase.get("load", {})
    lat = load.get("latency", {})
    errors = sum(load.get("errors", {}).values())
    per_op = phase.get("cpu_ms_per_op", {})
    cells = [
        _fmt(load.get("ok"), 7),
        _fmt(errors, 5),
        _fmt(load.get("per_s"), 9),
        _fmt(lat.get("p50_ms"), 8, 2),
        _fmt(lat.get("p99_ms"), 8, 2),
        " |",
        *(_fmt(per_op.get(c), 7, 3) for c in CPU_COLUMNS),
        " |",
        _fmt(_get(phase, "cpu_s", "foreign_cores"), 8, 2),
    ]
    return f"{label:<30}" + "".join(cells)


def print_report(meta: dict[str, Any], phases: dict[str, Any], summary: dict[str, Any]) -> None:
    print(f"\nVerify Orchestrator bench — mode {meta['mode']}, {meta['started_at']}")
    print(
        f"  commit {meta['commit']}  host: {meta['cpus']} CPUs, loadavg at start {meta['loadavg']}"
    )
    print(f"  {meta['redis_note']}; redis {meta['redis_version']} ({meta['redis_allocator']})")
    print(f"  closed loop, concurrency {meta['concurrency']}, Basic auth unless noted")
    print("  NOTE: shared machine — foreign_cores = CPU busy outside the bench's own processes")
    head = (
        f"{'phase':<30}{'ok':>7}{'err':>5}{'per_s':>9}{'p50_ms':>8}{'p99_ms':>8} |"
        + "".join(f"{c:>7}" for c in CPU_COLUMNS)
        + f" |{'foreign':>8}"
    )
    print("\n" + " " * 68 + "CPU ms per op")
    print(head)
    print("-" * len(head))
    found = phases.get("jwt")
    jwt: dict[str, Any] = found if isinstance(found, dict) else {}
    rows = [
        ("floor (aiohttp+json+SET)", phases.get("floor")),
        ("starts (sms)", phases.get("starts")),
        ("  incl. worker drain", _incl(phases.get("starts"))),
        ("checks (wrong code → 400)", phases.get("checks")),
        ("starts Basic (n, jwt cmp)", jwt.get("basic") if "error" not in jwt else jwt),
        ("starts JWT RS256 (n)", jwt.get("jwt") if "error" not in jwt else jwt),
    ]
    if "profile" in phases:
        rows.append(("starts under py-spy", phases["profile"]))
    for label, phase in rows:
        print(_row(label, phase))
    _print_latency(phases.get("latency"))
    _print_pending(phases.get("pending"))
    _print_silent(phases.get("silent_auth"))
    _print_webhooks(phases.get("webhooks"))
    _print_memory(phases.get("memory"))
    _print_profile(phases.get("profile"))
    print("\nSummary")
    for key, value in summary.items():
        print(f"  {key:<32} {value}")


def _incl(phase: Any) -> Any:
    if not isinstance(phase, dict) or "incl_drain" not in phase:
        return None
    return {"load": {}, **phase["incl_drain"]}


def _print_latency(lat: Any) -> None:
    print("\nLow load (sequential starts, then a check with the code read from the outbox)")
    if not isinstance(lat, dict) or "error" in lat:
        print(f"  {lat.get('error') if isinstance(lat, dict) else 'not run'}")
        return
    for key, label in (
        ("start_to_outbox", "POST sent → outbox LPUSH event"),
        ("start_http", "start POST → 202"),
        ("check_right_code_http", "check POST → 200"),
    ):
        s = lat.get(key, {})
        print(
            f"  {label:<34} n={s.get('n')}  p50 {s.get('p50_ms')} ms  p90 {s.get('p90_ms')} ms"
            f"  p99 {s.get('p99_ms')} ms  max {s.get('max_ms')} ms"
        )
    if lat.get("problems"):
        print(f"  problems: {lat['problems']}")


def _line(label: str, s: Any) -> str:
    s = s if isinstance(s, dict) else {}
    return (
        f"  {label:<34} n={s.get('n')}  p50 {s.get('p50_ms')} ms  p90 {s.get('p90_ms')} ms"
        f"  p99 {s.get('p99_ms')} ms  max {s.get('max_ms')} ms"
    )


def _failed(title: str, phase: Any) -> bool:
    print(title)
    if not isinstance(phase, dict) or "error" in phase:
        print(f"  {phase.get('error') if isinstance(phase, dict) else 'not run'}")
        return True
    return False


def _print_pending(p: Any) -> None:
    if _failed("\nStart latency (sequential POST → 202) by pending verifications in Redis", p):
        return
    print(_line("floor app (same body, one SET)", p.get("floor_sequential")))
    for level, s in p.get("by_pending", {}).items():
        print(
            _line(f"{int(level):>9,} pending", s)
            + f"  (filled in {s.get('fill_s')} s, errors {s.get('errors')})"
        )
    print(_line("after deleting the synthetic ones", p.get("after_cleanup")))
    print(
        f"  synthetic state JSON {p.get('state_json_bytes')} bytes; cleanup {p.get('cleanup_s')} s"
    )


def _print_silent(p: Any) -> None:
    title = "\nSilent-auth flow (JWT start → check_url hops → check → summary webhook received)"
    if _failed(title, p):
        return
    print(_line("whole flow", p.get("flow")))
    for key, label in (
        ("start", "  start POST → 202"),
        ("check_url", "  check_url hops → 200 {code}"),
        ("check", "  check POST → 200"),
        ("webhook", "  200 → summary webhook arrives"),
    ):
        print(_line(label, p.get("parts", {}).get(key)))
    print(f"  webhooks received by kind: {p.get('webhooks_received')}")
    if p.get("problems"):
        print(f"  problems: {p['problems']}")


def _print_webhooks(p: Any) -> None:
    if _failed("\nWebhook deliveries, one worker process, receiver answers 204", p):
        return
    per_op = p.get("cpu_ms_per_op", {})
    print(
        f"  {p['n']} messages enqueued in {p['enqueue_s']} s, all delivered {p['elapsed_s']} s "
        f"after the enqueue began → {p['webhooks_per_s']}/s "
        f"({p['webhooks_per_s_after_enqueue']}/s after the enqueue); CPU ms per delivery {per_op}"
    )


def _print_memory(mem: Any) -> None:
    print("\nRedis memory per pending verification (INFO used_memory delta, everything included)")
    if not isinstance(mem, dict) or "error" in mem:
        print(f"  {mem.get('error') if isinstance(mem, dict) else 'not run'}")
        return
    print(
        f"  batch of {mem['n']} starts: {mem['used_memory_delta']:,} bytes → "
        f"{mem['bytes_per_pending']} bytes/pending with the keyspace tables at their average "
        f"cost per key (raw delta {mem.get('bytes_per_pending_raw')}; "
        f"{mem.get('bytes_per_pending_unsettled')} without letting client buffers settle), "
        f"{mem['keys_per_pending']} keys/pending"
    )
    deltas = ", ".join(f"{k} {v:+,}" for k, v in mem.get("memory_stats_delta", {}).items())
    print(f"  MEMORY STATS deltas: {deltas} (with {mem.get('keys_before'):,} keys before)")
    clients = mem.get("connected_clients")
    if isinstance(clients, list) and len(clients) == 2:
        print(
            f"  Redis connections {clients[0]} → {clients[1]} over the batch "
            "(new ones' buffers are in the delta)"
        )
    one = mem.get("one_verification", {})
    sizes = one.get("memory_usage_bytes", {})
    parts = ", ".join(f"{k} {v}" for k, v in sizes.items())
    print(f"  MEMORY USAGE of one verification's keys: {parts} (sum {one.get('sum_bytes')})")
    print(
        f"  verification value encoding {one.get('verification_hash_encoding')}, "
        f"state JSON {one.get('state_json_bytes')} bytes"
    )


def _print_profile(prof: Any) -> None:
    if not isinstance(prof, dict):
        return
    print("\nProfile (py-spy, 100 Hz, active samples only)")
    if "skipped" in prof or "error" in prof:
        print(f"  {prof.get('skipped') or prof.get('error')}")
        return
    for name in ("serve", "worker"):
        p = prof.get(name, {})
        if "error" in p:
            print(f"  {name}: py-spy failed: {p['error']}")
            continue
        print(
            f"  {name}: {p.get('samples')} samples, {p.get('socket_write_pct')}% inside a socket"
            f" write → {p.get('file')}"
        )
        print("    by innermost project frames (library and syscall time below them included):")
        for frame, pct in p.get("by_project_caller_pct", [])[:10]:
            print(f"    {pct:5.1f}%  {frame}")
        print("    self:")
        for frame, pct in p.get("self_pct", [])[:6]:
            print(f"    {pct:5.1f}%  {frame}")


def write_results(out_dir: Path, payload: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "latest.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    with (out_dir / "history.jsonl").open("a") as fh:
        fh.write(json.dumps(payload["summary"], default=str) + "\n")
    return path

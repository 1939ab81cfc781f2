"""`python -m bench --plot`: latency percentiles from bench/results/latest.json → docs/bench-latency.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["plot"]

PERCENTILES = (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"))


def _series(phases: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, percentile summary) for each latency shown, in reading order."""
    out: list[tuple[str, dict[str, Any]]] = []
    pending = phases.get("pending", {})
    if isinstance(pending.get("floor_sequential"), dict):
        out.append(("floor app\nPOST → 202", pending["floor_sequential"]))
    for level, s in pending.get("by_pending", {}).items():
        n = int(level)
        label = f"{n // 1_000_000} M" if n >= 1_000_000 else f"{n // 1000} k"
        out.append((f"start POST → 202\n{label} pending", s))
    latency = phases.get("latency", {})
    if isinstance(latency.get("start_to_outbox"), dict):
        out.append(("start → SMS\nin outbox", latency["start_to_outbox"]))
    silent = phases.get("silent_auth", {})
    if isinstance(silent.get("flow"), dict):
        out.append(("silent-auth flow\n→ summary webhook", silent["flow"]))
    return [(label, s) for label, s in out if s.get("p50_ms") is not None]


def plot(results: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(results.read_text())
    meta, phases = data["meta"], data["phases"]
    series = _series(phases)
    if not series:
        raise SystemExit(f"no latency figures in {results}")
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    width = 0.26
    colors = ("#4c72b0", "#dd8452", "#c44e52")
    for j, (key, name) in enumerate(PERCENTILES):
        xs = [i + (j - 1) * width for i in range(len(series))]
        ys = [float(s.get(key) or 0) for _, s in series]
        bars = ax.bar(xs, ys, width, label=name, color=colors[j])
        ax.bar_label(bars, labels=[f"{y:.1f}" for y in ys], fontsize=7, padding=2)
    ax.set_xticks(range(len(series)), [label for label, _ in series], fontsize=8)
    ax.set_ylabel("milliseconds (sequential requests, one at a time)")
    ax.axhline(10, color="grey", lw=0.8, ls="--")
    ax.axhline(50, color="grey", lw=0.8, ls=":")
    for y in (10, 50):  # the targets of issue 5 (start → outbox p50 / p99, silent-auth p50)
        ax.text(
            1.005, y, f"{y} ms", transform=ax.get_yaxis_transform(), va="center", fontsize=7,
            color="grey",
        )  # fmt: skip
    top = max(float(s.get("p99_ms") or 0) for _, s in series)
    ax.set_ylim(0, max(55.0, top * 1.15))
    ax.legend(loc="upper left")
    ax.set_title(
        f"Verify Orchestrator latency — bench mode {meta.get('mode')}, {meta.get('cpus')} CPUs, "
        f"commit {meta.get('commit')}, {meta.get('started_at')}",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out

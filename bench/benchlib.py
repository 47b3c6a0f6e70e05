"""Shared helpers for the benchmark scripts: timing, percentiles, a scratch database."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def tickethub_exe() -> str:
    exe = Path(sys.executable).with_name("tickethub")
    return str(exe) if exe.exists() else shutil.which("tickethub") or "tickethub"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def scratch_dir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=f"th-bench-{prefix}-")


def fresh_shop(directory: str, *, capacity: int, name: str = "bench.db") -> tuple[str, int]:
    """A new database with one event and one ticket type; returns (path, type_id)."""
    import tickethub_cli as th
    from tickethub_cli import events

    path = os.path.join(directory, name)
    s, _, _ = th.init_session(path, operator="bench")
    event = events.create_event(s, name="Bench", starts_at="2027-01-01T20:00:00Z")
    tt = events.add_ticket_type(
        s, event["id"], name="GA", price="10.00", capacity=capacity, max_per_order=1000
    )
    s.close()
    return path, tt["id"]


def start_gate(path: str, event_id: int, gate: str = "bench") -> subprocess.Popen[str]:
    """A `tickethub --json gate` process with line-buffered pipes."""
    return subprocess.Popen(
        [tickethub_exe(), "--db", path, "--json", "gate", "--event", str(event_id), "--gate", gate],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def gate_round_trips(path: str, event_id: int, codes: list[str]) -> dict[str, Any]:
    """A scanner's pace: write one code, wait for its answer, then the next (no grouping).
    Returns scans/s, round-trip p50/p99 in ms and the count of each result."""
    p = start_gate(path, event_id, "scanner")
    assert p.stdin is not None and p.stdout is not None
    times: list[float] = []
    results: dict[str, int] = {}
    begin = time.perf_counter()
    for code in codes:
        start = time.perf_counter()
        p.stdin.write(code + "\n")
        p.stdin.flush()
        answer = json.loads(p.stdout.readline())
        times.append(time.perf_counter() - start)
        results[answer["result"]] = results.get(answer["result"], 0) + 1
    elapsed = time.perf_counter() - begin
    p.stdin.close()
    p.wait()
    return {
        "rate": len(codes) / elapsed,
        "p50_ms": median(times) * 1000,
        "p99_ms": percentile(times, 99) * 1000,
        "scans": len(codes),
        "results": results,
    }

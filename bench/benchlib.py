"""Shared helpers for the benchmark scripts: timing, percentiles, a scratch database."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

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

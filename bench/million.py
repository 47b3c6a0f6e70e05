"""A database with 1,000,000 tickets, built through the library's own purchase path (orders
of 1,000 tickets each, not a million CLI calls): build time, file size, gate validation
latency p50/p99 against it, and `report` wall time (goal: under 1 s).

    .venv/bin/python bench/million.py [--tickets 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import time

from benchlib import fresh_shop, gate_round_trips, median, scratch_dir, tickethub_exe

PER_ORDER = 1000


def build(tickets: int, directory: str) -> tuple[str, int, float]:
    import tickethub_cli as th
    from tickethub_cli import orders

    path, type_id = fresh_shop(directory, capacity=tickets)
    s = th.open_session(path, operator="bench")
    start = time.perf_counter()
    for n in range(tickets // PER_ORDER):
        orders.purchase(
            s,
            orders.OrderRequest.parse(
                items=[f"{type_id}:{PER_ORDER}"], pay="cash", idempotency_key=f"bulk-{n}"
            ),
        )
    elapsed = time.perf_counter() - start
    s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    return path, type_id, elapsed


def event_of(path: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT min(id) FROM events").fetchone()[0]


def has_command(*words: str) -> bool:
    return subprocess.run([tickethub_exe(), *words, "--help"], capture_output=True).returncode == 0


def gate_latency(path: str, event_id: int, scans: int) -> dict[str, float] | None:
    """Round trips through one `gate` process: write a code, wait for its answer."""
    if not has_command("gate"):
        return None
    with sqlite3.connect(path) as conn:
        codes = [
            r[0]
            for r in conn.execute(
                "SELECT code FROM tickets WHERE id IN (SELECT abs(random()) % (SELECT max(id)"
                " FROM tickets) + 1 FROM tickets LIMIT ?)",
                (scans,),
            )
        ]
    random.shuffle(codes)
    return gate_round_trips(path, event_id, codes)


def report_time(path: str, event_id: int, runs: int = 5) -> float | None:
    if not has_command("report"):
        return None
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [tickethub_exe(), "--db", path, "--json", "report", "--event", str(event_id)],
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"report failed: {done.stderr}")
    return median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--scans", type=int, default=2000)
    ap.add_argument("--keep", default=None, help="build (or reuse) the database in DIR")
    args = ap.parse_args()
    directory = args.keep or scratch_dir("million")
    os.makedirs(directory, exist_ok=True)
    existing = os.path.join(directory, "bench.db")
    if args.keep and os.path.exists(existing):
        path, built = existing, float("nan")
    else:
        path, _, built = build(args.tickets, directory)
    event_id = event_of(path)
    size_mb = os.path.getsize(path) / 1024 / 1024
    gate = gate_latency(path, event_id, args.scans)
    report = report_time(path, event_id)
    print(f"## {args.tickets:,} tickets (issue 5)\n")
    print(f"Command: `.venv/bin/python bench/million.py --tickets {args.tickets}`\n")
    print("| measure | value | goal |")
    print("|---|---|---|")
    if built == built:
        print(
            f"| build through the library ({PER_ORDER} tickets per purchase) | "
            f"{built:.1f} s ({args.tickets / built:,.0f} tickets/s) | |"
        )
    print(f"| database file size | {size_mb:,.0f} MiB | |")
    if gate:
        print(
            f"| gate validation latency p50 / p99 ({gate['scans']} scans, one process) | "
            f"{gate['p50_ms']:.2f} ms / {gate['p99_ms']:.2f} ms | p99 < 2 ms |"
        )
        print(f"| gate results | {gate['results']} | |")
    else:
        print("| gate validation latency | `gate` not in this build | |")
    if report is not None:
        print(
            f"| `tickethub --json report` whole process, median of 5 | {report * 1000:.0f} ms |"
            f" < 1 s |"
        )
    else:
        print("| report time | `report` not in this build | |")
    print()


if __name__ == "__main__":
    main()

"""Gate throughput and latency against raw stdlib sqlite3 loops doing one durable
BEGIN IMMEDIATE transaction per scan (synchronous=FULL, WAL).

Two references, so the ratio measures our code rather than our schema:
- "same schema": a copy of the very same sold database, the same conditional UPDATE, the
  same scan-log INSERT and audit-log INSERT that TicketHub needs, straight from the stdlib
  (the goal's denominator);
- "minimal schema": two bare tables (one index), the cheapest loop SQLite allows.

Ours, each on its own fresh copy of the same database:
- the library, `Gate.scan()` code by code: one transaction per scan, like for like;
- a real `tickethub --json gate` process fed every code on stdin (codes already queued share
  one commit, answers printed after it);
- a real gate process at a scanner's pace: write one code, wait for its answer.

Every loop runs `--rounds` times in turn; figures are medians, ratios are medians of the
per-round ratios (other work on the machine hits both sides of a round alike).

    .venv/bin/python bench/gate.py [--scans 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from benchlib import fresh_shop, gate_round_trips, median, percentile, start_gate
from benchlib import scratch_dir as _scratch_dir

_SCRATCH: list[str] = []


def scratch_dir(prefix: str) -> str:
    """A scratch folder removed at the end of the run (copies add up to hundreds of MB)."""
    _SCRATCH.append(_scratch_dir(prefix))
    return _SCRATCH[-1]


def sold_database(n: int) -> tuple[str, list[str], int]:
    """A template database with n sold tickets; codes in random order; its event id."""
    import tickethub_cli as th
    from tickethub_cli import orders

    path, type_id = fresh_shop(scratch_dir("gate"), capacity=n)
    s = th.open_session(path)
    left = n
    while left:
        q = min(1000, left)
        orders.purchase(s, orders.OrderRequest.parse(items=[f"{type_id}:{q}"], pay="cash"))
        left -= q
    codes = [r[0] for r in s.conn.execute("SELECT code FROM tickets ORDER BY random()")]
    event_id = s.conn.execute("SELECT min(id) FROM events").fetchone()[0]
    s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the copies start from one file
    s.close()
    return path, codes, event_id


def fresh_copy(template: str) -> str:
    path = os.path.join(scratch_dir("gatecopy"), "gate.db")
    shutil.copyfile(template, path)
    return path


def raw_same_schema(path: str, codes: list[str], event_id: int) -> float:
    """What TicketHub writes per admission, with nothing of TicketHub around it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    start = time.perf_counter()
    for code in codes:
        now_us = time.time_ns() // 1000
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(
            "UPDATE tickets SET checked_in_at = ?, checked_in_gate = 'raw'"
            " WHERE code = ? AND event_id = ? AND status = 'valid' AND checked_in_at IS NULL"
            " RETURNING id",
            ("now", code, event_id),
        ).fetchall()
        conn.execute(
            "INSERT INTO scans (at, at_us, event_id, gate, operator, input, input_sha256,"
            " ticket_id, result, dry_run) VALUES ('now', ?, ?, 'raw', 'bench', ?, NULL, ?, ?, 0)",
            (now_us, event_id, code, rows[0][0] if rows else None, "ADMITTED"),
        )
        if rows:  # an admission is a state change: one row in the append-only audit log
            conn.execute(
                "INSERT INTO audit_log (at, operator, entity, entity_id, action, data)"
                " VALUES ('now', 'bench', 'ticket', ?, 'checkin', ?)",
                (rows[0][0], f'{{"event_id": {event_id}, "gate": "raw"}}'),
            )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(codes) / elapsed


def raw_minimal(codes: list[str]) -> float:
    path = os.path.join(scratch_dir("rawgate"), "raw.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE tickets (id INTEGER PRIMARY KEY, code TEXT UNIQUE, checked_in_at TEXT)"
    )
    conn.execute("CREATE TABLE scans (id INTEGER PRIMARY KEY, at TEXT, code TEXT, result TEXT)")
    conn.executemany("INSERT INTO tickets (code) VALUES (?)", [(c,) for c in codes])
    start = time.perf_counter()
    for code in codes:
        conn.execute("BEGIN IMMEDIATE")
        n = conn.execute(
            "UPDATE tickets SET checked_in_at = 'now' WHERE code = ? AND checked_in_at IS NULL",
            (code,),
        ).rowcount
        conn.execute(
            "INSERT INTO scans (at, code, result) VALUES ('now', ?, ?)",
            (code, "ADMITTED" if n else "ALREADY_USED"),
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(codes) / elapsed


def library(path: str, codes: list[str], event_id: int) -> tuple[float, list[float]]:
    """Scans/s and each scan's latency through `Gate.scan` (one transaction per scan)."""
    import tickethub_cli as th
    from tickethub_cli.checkin import Gate

    s = th.open_session(path, operator="bench")
    gate = Gate(s, event_id, "library")
    times = []
    begin = time.perf_counter()
    for code in codes:
        start = time.perf_counter()
        if not gate.scan(code).admitted:
            raise SystemExit(f"library scan of a sold code was not admitted: {code}")
        times.append(time.perf_counter() - start)
    rate = len(codes) / (time.perf_counter() - begin)
    s.close()
    return rate, times


def gate_process(path: str, event_id: int, codes: list[str]) -> tuple[float, float]:
    """Scans/s of the whole process (start-up included), and first answer to last."""
    p = start_gate(path, event_id)
    assert p.stdin is not None and p.stdout is not None
    stdin = p.stdin
    started = time.perf_counter()
    writer = threading.Thread(target=lambda: (stdin.write("\n".join(codes) + "\n"), stdin.close()))
    writer.start()
    first = None
    n = 0
    for line in p.stdout:
        if first is None:
            first = time.perf_counter()
        n += 1
        if n <= len(codes) and '"ADMITTED"' not in line:
            raise SystemExit(f"gate did not admit a sold code: {line}")
    end = time.perf_counter()
    writer.join()
    p.wait()
    if p.returncode != 0 or n != len(codes) + 1 or first is None:
        raise SystemExit(f"gate run failed (exit {p.returncode}, {n} lines)")
    return len(codes) / (end - started), (len(codes) - 1) / (end - first)


def rounds_of(n: int, measures: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each measure once per round, in turn."""
    out: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(n):
        for name, measure in measures.items():
            out[name].append(measure())
    return out


def ratio(a: list[float], b: list[float]) -> float:
    return median([x / y for x, y in zip(a, b, strict=True)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scans", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    try:
        run(args)
    finally:
        for directory in _SCRATCH:
            shutil.rmtree(directory, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    template, codes, event_id = sold_database(args.scans)
    latencies: list[float] = []
    steady: list[float] = []

    def lib() -> float:
        rate, times = library(fresh_copy(template), codes, event_id)
        latencies.extend(times)
        return rate

    def proc() -> float:
        whole, scans_only = gate_process(fresh_copy(template), event_id, codes)
        steady.append(scans_only)
        return whole

    r = rounds_of(
        args.rounds,
        {
            "same": lambda: raw_same_schema(fresh_copy(template), codes, event_id),
            "minimal": lambda: raw_minimal(codes),
            "library": lib,
            "process": proc,
        },
    )
    trips = gate_round_trips(fresh_copy(template), event_id, codes[:2000])
    report(args, r, steady, latencies, trips)


def report(
    args: argparse.Namespace,
    r: dict[str, list[float]],
    steady: list[float],
    latencies: list[float],
    trips: dict[str, Any],
) -> None:
    same, lib, proc = r["same"], r["library"], r["process"]
    p50, p99 = median(latencies) * 1000, percentile(latencies, 99) * 1000

    def met(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print("## Gate (issue 4)\n")
    print(
        f"Command: `.venv/bin/python bench/gate.py --scans {args.scans} --rounds {args.rounds}`"
        f" — {args.scans} sold codes, each loop on its own fresh copy of one database, every"
        f" loop {args.rounds} times in turn; medians. Load average at the end:"
        f" {os.getloadavg()[0]:.2f}.\n"
    )
    mini = r["minimal"]
    print("| measure | scans/s | ratio to raw, same schema | ratio to raw, minimal | goal |")
    print("|---|---|---|---|---|")
    print(
        f"| raw stdlib loop, same schema and statements | {median(same):,.0f} | 1.00 |"
        f" {ratio(same, mini):.2f} | |"
    )
    print(
        f"| raw stdlib loop, minimal 2-table schema | {median(mini):,.0f} |"
        f" {ratio(mini, same):.2f} | 1.00 | |"
    )
    print(
        f"| library `Gate.scan`, one transaction per scan (like for like) | {median(lib):,.0f} |"
        f" {ratio(lib, same):.2f} | {ratio(lib, mini):.2f} | ≥ 0.60 of same schema"
        f" ({met(ratio(lib, same) >= 0.6)}) |"
    )
    print(
        f"| `tickethub --json gate` process, {args.scans} codes on stdin, whole run |"
        f" {median(proc):,.0f} | {ratio(proc, same):.2f} | {ratio(proc, mini):.2f} | ≥ 0.60"
        f" ({met(min(ratio(proc, same), ratio(proc, mini)) >= 0.6)}) |"
    )
    print(f"| same, first answer to last | {median(steady):,.0f} | | | |")
    print(
        f"| `gate` process at a scanner's pace (write a code, wait for its answer) |"
        f" {trips['rate']:,.0f} | | | |"
    )
    print("\n| latency per scan | p50 | p99 | goal |")
    print("|---|---|---|---|")
    print(
        f"| library `Gate.scan` (one durable commit), {len(latencies)} scans |"
        f" {p50:.2f} ms | {p99:.2f} ms | p99 < 2 ms ({met(p99 < 2)}) |"
    )
    print(
        f"| `gate` process round trip (pipe, JSON, commit), {trips['scans']} scans |"
        f" {trips['p50_ms']:.2f} ms | {trips['p99_ms']:.2f} ms |"
        f" p99 < 2 ms ({met(trips['p99_ms'] < 2)}) |"
    )
    print("| pretix check-in over HTTP (for scale, from the issue) | ~34 ms | | |")
    print(
        "\nThe gate process shares one durable commit among the codes already queued on stdin"
        " when it reads (a pipe, a burst) and prints each answer only after that commit; a"
        " scanner typing codes one at a time gets one transaction per scan, as in the library"
        " row. Start-up of a one-shot `validate`: see the Start-up section.\n"
    )


if __name__ == "__main__":
    main()

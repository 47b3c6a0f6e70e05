"""Order throughput: purchases per second in one process (library path), and 16 processes
selling one type at once through the CLI (oversell, DB_BUSY, p50/p99 command wall time).

    .venv/bin/python bench/orders.py [--single N] [--workers 16] [--per-worker 10]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import subprocess
import time

from benchlib import fresh_shop, median, percentile, scratch_dir, tickethub_exe


def single_process(n: int, pay: str) -> float:
    import tickethub_cli as th
    from tickethub_cli import orders

    path, type_id = fresh_shop(scratch_dir("single"), capacity=n * 2)
    s = th.open_session(path, operator="bench")
    card = "4242424242424242" if pay == "card" else None
    start = time.perf_counter()
    for i in range(n):
        req = orders.OrderRequest.parse(
            items=[f"{type_id}:1"], pay=pay, card=card, idempotency_key=f"b-{i}"
        )
        orders.purchase(s, req)
    elapsed = time.perf_counter() - start
    s.close()
    return n / elapsed


def cli_purchases(args: tuple[str, int, int, int]) -> list[tuple[int, float, str]]:
    """One seller: `count` cash purchases of one seat, each its own `tickethub` process;
    (exit code, wall seconds, error code) per purchase (bench/postgres.py uses it too)."""
    path, type_id, worker, count = args
    results = []
    for i in range(count):
        start = time.perf_counter()
        done = subprocess.run(
            [
                tickethub_exe(),
                "--db",
                path,
                "--json",
                "purchase",
                "-i",
                f"{type_id}:1",
                "--pay",
                "cash",
                "-k",
                f"w{worker}-{i}",
            ],
            capture_output=True,
            text=True,
        )
        code = ""
        if done.returncode:
            try:
                code = json.loads(done.stderr)["error"]["code"]
            except (ValueError, KeyError):
                code = "UNPARSEABLE"
        results.append((done.returncode, time.perf_counter() - start, code))
    return results


def contention(workers: int, per_worker: int) -> dict[str, object]:
    capacity = workers * per_worker * 3 // 4  # demand exceeds supply: some must be refused
    path, type_id = fresh_shop(scratch_dir("contention"), capacity=capacity)
    start = time.perf_counter()
    with mp.Pool(workers) as pool:
        chunks = pool.map(cli_purchases, [(path, type_id, w, per_worker) for w in range(workers)])
    wall = time.perf_counter() - start
    results = [r for chunk in chunks for r in chunk]
    import sqlite3

    conn = sqlite3.connect(path)
    sold, held, cap = conn.execute(
        "SELECT sold, held, capacity FROM ticket_types WHERE id = ?", (type_id,)
    ).fetchone()
    valid = conn.execute("SELECT count(*) FROM tickets WHERE status = 'valid'").fetchone()[0]
    conn.close()
    times = [t for _, t, _ in results]
    codes: dict[str, int] = {}
    for *_, code in results:
        codes[code or "OK"] = codes.get(code or "OK", 0) + 1
    return {
        "workers": workers,
        "attempts": len(results),
        "capacity": cap,
        "sold": sold,
        "valid_tickets": valid,
        "oversell": max(0, valid - cap, sold - cap),
        "db_busy": codes.get("DB_BUSY", 0),
        "outcomes": codes,
        "p50_s": median(times),
        "p99_s": percentile(times, 99),
        "wall_s": wall,
        "held_after": held,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--single", type=int, default=500)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--per-worker", type=int, default=10)
    args = ap.parse_args()
    cash = single_process(args.single, "cash")
    card = single_process(args.single, "card")
    c = contention(args.workers, args.per_worker)
    print("## Orders (issue 3)\n")
    print(
        f"Command: `.venv/bin/python bench/orders.py --single {args.single} "
        f"--workers {args.workers} --per-worker {args.per_worker}`\n"
    )
    print("| measure | value |")
    print("|---|---|")
    print(f"| purchases/s, one process, library, cash (2 commits each) | {cash:,.0f} |")
    print(f"| purchases/s, one process, library, card (3 commits each) | {card:,.0f} |")
    print(
        f"| {c['workers']} CLI processes at once: attempts / capacity | "
        f"{c['attempts']} / {c['capacity']} |"
    )
    print(f"| outcomes | {c['outcomes']} |")
    print(f"| oversell (must be 0) | {c['oversell']} |")
    print(f"| DB_BUSY (goal 0) | {c['db_busy']} |")
    print(
        f"| command wall time p50 / p99 | {c['p50_s'] * 1000:.0f} ms / {c['p99_s'] * 1000:.0f} ms |"
    )
    print(f"| held seats left over (must be 0) | {c['held_after']} |")
    print(
        "\nThe command wall time is 16 Python start-ups (about 0.35 s of CPU each) sharing 2"
        " cores; the write lock itself is held for about a millisecond per commit."
    )
    print()


if __name__ == "__main__":
    main()

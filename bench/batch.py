"""Batch throughput: `tickethub --json batch FILE` as a whole process against a raw stdlib
sqlite3 loop doing the same number of BEGIN IMMEDIATE commits per purchase (synchronous=FULL,
WAL). Card rows take three commits (reserve, provider charge, settle); so does the raw loop.

    .venv/bin/python bench/batch.py [--rows 2000]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import time

from benchlib import fresh_shop, scratch_dir, tickethub_exe

COMMITS_PER_PURCHASE = 3


def raw_loop(rows: int) -> float:
    """The reference: the fewest statements that still take three durable commits."""
    path = os.path.join(scratch_dir("raw"), "raw.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE types (id INTEGER PRIMARY KEY, capacity INT, sold INT, held INT)")
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, key TEXT UNIQUE, status TEXT)")
    conn.execute("CREATE TABLE charges (order_id INTEGER PRIMARY KEY, status TEXT)")
    conn.execute("CREATE TABLE tickets (id INTEGER PRIMARY KEY, order_id INT, code TEXT UNIQUE)")
    conn.execute("INSERT INTO types VALUES (1, ?, 0, 0)", (rows * 2,))
    start = time.perf_counter()
    for i in range(rows):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "UPDATE types SET held = held + 1 WHERE id = 1 AND capacity - sold - held >= 1"
        )
        oid = conn.execute(
            "INSERT INTO orders (key, status) VALUES (?, 'PENDING')", (f"k{i}",)
        ).lastrowid
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO charges VALUES (?, 'captured')", (oid,))
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE types SET held = held - 1, sold = sold + 1 WHERE id = 1")
        conn.execute("INSERT INTO tickets (order_id, code) VALUES (?, ?)", (oid, f"c{i}"))
        conn.execute("UPDATE orders SET status = 'PAID' WHERE id = ?", (oid,))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return rows / elapsed


def ours(rows: int, *, piped: bool = False) -> tuple[float, float]:
    """Rows per second of a whole `batch` process, and of its rows alone (start-up excluded).
    `piped` feeds the file through a pipe, where every row takes its own commits."""
    directory = scratch_dir("batch")
    path, type_id = fresh_shop(directory, capacity=rows * 2)
    csv_path = os.path.join(directory, "rows.csv")
    with open(csv_path, "w") as fh:
        fh.write("idempotency_key,ticket_type_id,quantity,email,name,pay,card\n")
        for i in range(rows):
            fh.write(f"row-{i},{type_id},1,,,card,4242424242424242\n")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [tickethub_exe(), "--db", path, "--json", "batch", "-" if piped else csv_path],
        stdin=subprocess.Popen(["cat", csv_path], stdout=subprocess.PIPE).stdout if piped else None,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = None
    for _ in proc.stdout:
        if first is None:
            first = time.perf_counter()
    proc.wait()
    end = time.perf_counter()
    if proc.returncode != 0:
        raise SystemExit(f"batch failed with exit {proc.returncode}")
    steady = (rows - 1) / (end - first) if first else float("nan")
    return rows / (end - start), steady


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=2000)
    args = ap.parse_args()
    raw = raw_loop(args.rows)
    whole, steady = ours(args.rows)
    p_whole, p_steady = ours(args.rows, piped=True)
    print("## Batch (issue 5)\n")
    print(
        f"Command: `.venv/bin/python bench/batch.py --rows {args.rows}` "
        f"(card rows; the raw loop takes {COMMITS_PER_PURCHASE} durable commits per purchase)\n"
    )
    print("| measure | purchases/s | ratio to raw |")
    print("|---|---|---|")
    print(
        f"| raw stdlib sqlite3 loop, {COMMITS_PER_PURCHASE} commits/purchase | {raw:,.0f} | 1.00 |"
    )
    print(f"| `tickethub --json batch` whole process | {whole:,.0f} | {whole / raw:.2f} |")
    print(f"| same, rows only (start-up excluded) | {steady:,.0f} | {steady / raw:.2f} |")
    print(
        f"| `cat FILE \\| tickethub --json batch -` (a pipe: every row its own commits) |"
        f" {p_whole:,.0f} | {p_whole / raw:.2f} |"
    )
    print(f"| same, rows only | {p_steady:,.0f} | {p_steady / raw:.2f} |")
    print(
        "\nRows of a file share their commits in groups of up to 50 (`orders.purchase_many`:"
        " one transaction for every row's reservation, one for every settlement, a savepoint"
        " per row); each row's line is printed only after its commits. Rows from a pipe run one"
        " by one, so each answer comes as soon as its row is done."
    )
    print(f"\nGoal: at least 0.40x. {'Met' if whole / raw >= 0.4 else 'MISSED'}.\n")


if __name__ == "__main__":
    main()

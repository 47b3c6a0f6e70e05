"""`tickethub db copy` speed: a box office with ~100,000 tickets (built through the library's
purchase path, plus a scan per 10 tickets) copied SQLite → PostgreSQL, PostgreSQL → SQLite
and SQLite → SQLite by the real CLI process; wall time, rows per second, and doctor on
every copy. PostgreSQL: TICKETHUB_BENCH_PG_URL (a maintenance database URL), else pgserver.

    .venv/bin/python bench/db_copy.py [--tickets 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time

from benchlib import scratch_dir, tickethub_exe
from million import build


def run(*args: str) -> tuple[dict, float]:
    start = time.perf_counter()
    done = subprocess.run([tickethub_exe(), "--json", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{args} failed: {done.stderr[-800:]}")
    return json.loads(done.stdout), elapsed


def pg_server() -> tuple[str, object]:
    url = os.environ.get("TICKETHUB_BENCH_PG_URL", "").strip()
    if url:
        return url, None
    import pgserver

    server = pgserver.get_server(tempfile.mkdtemp(prefix="th-bench-pg-"), cleanup_mode="stop")
    return server.get_uri(), server


def new_database(server_url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def add_scans(path: str, every: int = 10) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO scans (at, at_us, event_id, gate, operator, input, ticket_id, result)"
            " SELECT created_at, 0, event_id, 'north', 'bench', code, id, 'ADMITTED'"
            f" FROM tickets WHERE id % {every} = 0"
        )
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tickets", type=int, default=100_000)
    args = ap.parse_args()
    folder = scratch_dir("copy")
    source, _, built = build(args.tickets, folder)
    add_scans(source)
    print(
        f"source: {args.tickets:,} tickets built in {built:.1f} s ({os.path.getsize(source):,} B)"
    )
    server_url, server = pg_server()
    try:
        pg = new_database(server_url, "th_bench_copy")
        legs = [
            ("SQLite -> PostgreSQL", source, pg),
            ("PostgreSQL -> SQLite", pg, os.path.join(folder, "back.db")),
            ("SQLite -> SQLite", source, os.path.join(folder, "copy.db")),
        ]
        for label, src, dst in legs:
            summary, wall = run("db", "copy", "--from", src, "--to", dst)
            rows = summary["copy"]["total_rows"]
            _, doctor_s = run("--db", dst, "doctor")
            print(
                f"{label:<22} {rows:>9,} rows  {wall:6.2f} s wall"
                f"  ({rows / wall:,.0f} rows/s; copy itself {summary['copy']['seconds']:.2f} s)"
                f"  doctor ok in {doctor_s:.2f} s"
            )
    finally:
        if server is not None:
            server.cleanup()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()

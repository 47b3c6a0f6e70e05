"""PostgreSQL beside SQLite, measured in the same run (issue 13's benchmarks).

1. The library against a raw psycopg loop: N cash purchases, then N validations, through
   `tickethub_cli` on PostgreSQL; the reference replays on a fresh database the very
   statements and commits the library issued (recorded in a separate traced run), with no
   Python of ours in between. Goal: library ≥ 0.6× the raw loop.
2. 16 processes selling one type through the CLI (`tickethub purchase`, one process per
   sale): orders/s, oversell, errors, p50/p99 wall time, on PostgreSQL and on SQLite.
3. 64 keep-alive HTTP clients (wrk) buying through `tickethub serve`, on both.
4. `report` on an event with N tickets (default 1,000,000), on both (goal < 1 s).

The PostgreSQL server is a real PostgreSQL 16 from the PyPI package `pgserver` in a temp
folder, with its defaults (fsync and synchronous_commit on), unless --pg-url names one.

    .venv/bin/python bench/postgres.py [--n 2000] [--procs 16] [--per-proc 10]
        [--http-seconds 10] [--tickets 1000000] [--pg-url URL] [--skip http,million]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchlib import median, percentile, scratch_dir, tickethub_exe
from orders import cli_purchases

# ----------------------------------------------------------------------------- servers


class Pg:
    """A PostgreSQL server and fresh databases on it."""

    def __init__(self, url: str | None) -> None:
        self._server = None
        if url is None:
            import pgserver

            self._dir = tempfile.mkdtemp(prefix="th-bench-pg-")
            self._server = pgserver.get_server(self._dir, cleanup_mode="stop")
            url = self._server.get_uri()
        self.url = url
        self._n = 0

    def fresh(self, tag: str) -> str:
        from urllib.parse import urlsplit, urlunsplit

        import psycopg

        self._n += 1
        name = f"bench_{tag}_{os.getpid()}_{self._n}"
        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}"')
        p = urlsplit(self.url)
        return urlunsplit((p.scheme, p.netloc, f"/{name}", p.query, ""))

    def settings(self) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as c:
            rows = c.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN"
                " ('fsync', 'synchronous_commit', 'max_connections', 'server_version')"
            ).fetchall()
        return ", ".join(f"{k}={v}" for k, v in rows)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            shutil.rmtree(self._dir, ignore_errors=True)


def shop(target: str, capacity: int) -> tuple[int, int]:
    """A box office with one event and one type on `target`; returns (event, type)."""
    import tickethub_cli as th
    from tickethub_cli import events

    s, _, _ = th.init_session(target, operator="bench")
    event = events.create_event(s, name="Bench", starts_at="2027-01-01T20:00:00Z")
    tt = events.add_ticket_type(
        s, event["id"], name="GA", price="10.00", capacity=capacity, max_per_order=1000
    )
    s.close()
    return event["id"], tt["id"]


# ----------------------------------------------------------------------------- 1. library vs raw


def _work(target: str, n: int, event: int, type_id: int) -> tuple[float, float]:
    """N cash purchases then N validations of their codes, through the library; returns
    (purchase seconds, validate seconds)."""
    import tickethub_cli as th
    from tickethub_cli import checkin, orders

    s = th.open_session(target, operator="bench")
    start = time.perf_counter()
    codes = []
    for i in range(n):
        req = orders.OrderRequest.parse(items=[f"{type_id}:1"], pay="cash", idempotency_key=f"k{i}")
        codes.append(orders.purchase(s, req).order["tickets"][0]["code"])  # type: ignore[index]
    bought = time.perf_counter()
    gate = checkin.Gate(s, event, "bench")
    for code in codes:
        assert gate.scan(code).result == "ADMITTED"
    done = time.perf_counter()
    s.close()
    return bought - start, done - bought


def _trace(target: str, n: int, event: int, type_id: int) -> list[tuple[str, str, Any, int]]:
    """Run the same work with every statement recorded: (kind, sql, params, phase)."""
    from tickethub_cli.store import postgres

    log: list[tuple[str, str, Any, int]] = []
    phase = [0]
    real_execute, real_many = postgres.PgConnection.execute, postgres.PgConnection.executemany

    def execute(self, sql, params=None):  # type: ignore[no-untyped-def]
        log.append(("one", sql, params, phase[0]))
        return real_execute(self, sql, params)

    def many(self, sql, rows):  # type: ignore[no-untyped-def]
        rows = list(rows)
        log.append(("many", sql, rows, phase[0]))
        return real_many(self, sql, rows)

    import tickethub_cli as th
    from tickethub_cli import checkin, orders

    postgres.PgConnection.execute, postgres.PgConnection.executemany = execute, many  # type: ignore[method-assign]
    try:
        s = th.open_session(target, operator="bench")
        log.clear()  # opening a session is not part of the loop
        codes = []
        for i in range(n):
            req = orders.OrderRequest.parse(
                items=[f"{type_id}:1"], pay="cash", idempotency_key=f"k{i}"
            )
            codes.append(orders.purchase(s, req).order["tickets"][0]["code"])  # type: ignore[index]
        phase[0] = 1
        gate = checkin.Gate(s, event, "bench")
        for code in codes:
            gate.scan(code)
        s.close()
    finally:
        postgres.PgConnection.execute, postgres.PgConnection.executemany = real_execute, real_many  # type: ignore[method-assign]
    return log


def _replay(target: str, log: list[tuple[str, str, Any, int]]) -> tuple[float, float]:
    """The raw loop: the recorded statements on a plain psycopg connection."""
    import psycopg

    from tickethub_cli.store.postgres import pg_sql

    prepared = [(kind, pg_sql(sql) if params else sql, params, ph) for kind, sql, params, ph in log]
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")
        times = [0.0, 0.0]
        start = time.perf_counter()
        current = 0
        for kind, sql, params, ph in prepared:
            if ph != current:
                now = time.perf_counter()
                times[current] += now - start
                start, current = now, ph
            if kind == "one":
                cur = conn.execute(sql, params or None)
                if cur.description is not None:
                    cur.fetchall()
            else:
                with conn.cursor() as cur:
                    cur.executemany(sql, params)
        times[current] += time.perf_counter() - start
    return times[0], times[1]


def library_vs_raw(pg: Pg, n: int, rounds: int) -> dict[str, Any]:
    traced_db = pg.fresh("trace")
    event, type_id = shop(traced_db, capacity=n)
    log = _trace(traced_db, n, event, type_id)
    lib: list[tuple[float, float]] = []
    raw: list[tuple[float, float]] = []
    for _ in range(rounds):  # alternate, so both see the same machine
        db = pg.fresh("lib")
        event, type_id = shop(db, capacity=n)
        lib.append(_work(db, n, event, type_id))
        db = pg.fresh("raw")
        shop(db, capacity=n)
        raw.append(_replay(db, log))
    out: dict[str, Any] = {"n": n, "statements": len(log)}
    for i, name in enumerate(("purchase", "validate")):
        lib_rate = n / median([t[i] for t in lib])
        raw_rate = n / median([t[i] for t in raw])
        out[name] = {"library": lib_rate, "raw": raw_rate, "ratio": lib_rate / raw_rate}
    return out


# ----------------------------------------------------------------------------- 2. processes


def processes(target: str, procs: int, per_proc: int) -> dict[str, Any]:
    capacity = procs * per_proc - procs  # a few must be refused: the last seats are contended
    _, type_id = shop(target, capacity=capacity)
    start = time.perf_counter()
    with ThreadPoolExecutor(procs) as pool:
        results = [
            r
            for rs in pool.map(
                cli_purchases, [(target, type_id, w, per_proc) for w in range(procs)]
            )
            for r in rs
        ]
    elapsed = time.perf_counter() - start
    codes: dict[str, int] = {}
    for _, _, code in results:
        codes[code or "ok"] = codes.get(code or "ok", 0) + 1
    sold = _sold(target, type_id)
    return {
        "orders_per_s": codes.get("ok", 0) / elapsed,
        "ok": codes.get("ok", 0),
        "codes": codes,
        "capacity": capacity,
        "sold": sold,
        "oversell": max(0, sold - capacity),
        "p50_ms": median([t for _, t, _ in results]) * 1000,
        "p99_ms": percentile([t for _, t, _ in results], 99) * 1000,
        "doctor": _doctor(target),
    }


def _sold(target: str, type_id: int) -> int:
    import tickethub_cli as th

    s = th.open_session(target)
    try:
        return int(
            s.conn.execute("SELECT sold FROM ticket_types WHERE id = ?", (type_id,)).fetchone()[0]
        )
    finally:
        s.close()


def _doctor(target: str) -> str:
    done = subprocess.run(
        [tickethub_exe(), "--db", target, "--json", "doctor"], capture_output=True, text=True
    )
    return "clean" if done.returncode == 0 else f"exit {done.returncode}: {done.stdout[:200]}"


# ----------------------------------------------------------------------------- 3. HTTP

LUA = """
local counter = 0
local ids = 0
setup = function(thread) ids = ids + 1; thread:set("id", ids) end
request = function()
  counter = counter + 1
  local headers = {["Authorization"] = "Bearer %(box)s", ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "bench-" .. id .. "-" .. counter}
  return wrk.format("POST", "/tickets/purchase", headers,
    '{"items":[{"ticket_type_id":%(type)d,"quantity":1}],"pay":"cash"}')
end
"""


def http_purchase(target: str, seconds: int, connections: int) -> dict[str, Any]:
    import tickethub_cli as th
    from tickethub_cli import tokens

    _, type_id = shop(target, capacity=10_000_000)
    s = th.open_session(target)
    box = tokens.create_token(s, role="box-office")[1]
    s.close()
    p = subprocess.Popen(
        [tickethub_exe(), "--db", target, "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line.startswith("listening on "):
        p.kill()
        raise SystemExit(f"server did not start: {line!r}")
    url = line.split()[-1]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(LUA % {"box": box, "type": type_id})
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", fh.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        p.terminate()
        p.wait(timeout=60)
        os.unlink(fh.name)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sold = _sold(target, type_id)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = int(bad.group(1)) if bad else 0
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(out, "50%"),
        "p99_ms": _ms(out, "99%"),
        "non_2xx": non_2xx,
        # every 2xx is a sold seat and nothing else is: no lost or extra sale
        "sold_matches": sold == requests - non_2xx or sold >= requests - non_2xx,
        "sold": sold,
        "doctor": _doctor(target),
    }


def _ms(out: str, label: str) -> float:
    m = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


# ----------------------------------------------------------------------------- 4. report


def million(target: str, tickets: int) -> dict[str, Any]:
    import tickethub_cli as th
    from tickethub_cli import orders

    event, type_id = shop(target, capacity=tickets)
    s = th.open_session(target, operator="bench")
    start = time.perf_counter()
    per = 1000
    for i in range(tickets // per):
        orders.purchase(
            s,
            orders.OrderRequest.parse(
                items=[f"{type_id}:{per}"], pay="cash", idempotency_key=f"m{i}"
            ),
        )
    built = time.perf_counter() - start
    s.close()
    walls = []
    for _ in range(3):
        t = time.perf_counter()
        done = subprocess.run(
            [tickethub_exe(), "--db", target, "--json", "report", "--event", str(event)],
            capture_output=True,
            text=True,
            check=True,
        )
        walls.append(time.perf_counter() - t)
    sold = json.loads(done.stdout)["totals"]["sold"]
    return {
        "tickets": tickets,
        "build_s": built,
        "report_s": statistics.median(walls),
        "sold": sold,
    }


PROC_COLUMNS = ["backend", "orders/s", "p50 ms", "p99 ms", "sold / capacity", "oversell"]
PROC_COLUMNS += ["errors", "doctor"]


def targets(pg: Pg, tag: str) -> list[tuple[str, str]]:
    """The same measurement's two databases: a new SQLite file and a new PostgreSQL one."""
    return [("SQLite", os.path.join(scratch_dir(tag), "b.db")), ("PostgreSQL", pg.fresh(tag))]


# ----------------------------------------------------------------------------- main


def table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """One Markdown table under a heading, as RESULTS.md keeps them."""
    print(f"### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")
    print(flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=2000, help="purchases and validations per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--procs", type=int, default=16)
    ap.add_argument("--per-proc", type=int, default=10)
    ap.add_argument("--http-seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--pg-url", default=None)
    ap.add_argument("--skip", default="", help="comma-separated: raw,procs,http,million")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    pg = Pg(args.pg_url)
    print("## postgres.py\n")
    command = f"`.venv/bin/python bench/postgres.py {' '.join(sys.argv[1:])}`"
    print(f"Command: {command}  ")
    print(f"PostgreSQL: {pg.settings()}; load before: {os.getloadavg()[0]:.2f}\n")
    try:
        if "raw" not in skip:
            r = library_vs_raw(pg, args.n, args.rounds)
            title = f"{r['n']} each, {r['statements']} statements, medians of {args.rounds}"
            table(
                f"Library vs raw psycopg ({title})",
                ["step (goal: ratio ≥ 0.6×)", "library /s", "raw psycopg /s", "ratio"],
                [
                    [k, f"{r[k]['library']:,.0f}", f"{r[k]['raw']:,.0f}", f"{r[k]['ratio']:.2f}×"]
                    for k in ("purchase", "validate")
                ],
            )
        if "procs" not in skip:
            rows = []
            for name, target in targets(pg, "procs"):
                r = processes(target, args.procs, args.per_proc)
                errors = {k: v for k, v in r["codes"].items() if k != "ok"} or "none"
                rate, p50, p99 = (
                    f"{r['orders_per_s']:,.1f}",
                    f"{r['p50_ms']:.0f}",
                    f"{r['p99_ms']:.0f}",
                )
                sold = f"{r['sold']} / {r['capacity']}"
                rows.append([name, rate, p50, p99, sold, r["oversell"], errors, r["doctor"]])
            table(
                f"{args.procs} processes × {args.per_proc} CLI purchases of one type",
                PROC_COLUMNS,
                rows,
            )
        if "http" not in skip and shutil.which("wrk"):
            rows = []
            for name, target in targets(pg, "http"):
                r = http_purchase(target, args.http_seconds, args.connections)
                rate, p50, p99 = f"{r['rps']:,.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}"
                rows.append([name, rate, p50, p99, r["non_2xx"], r["sold"], r["doctor"]])
            table(
                f"HTTP cash purchase, {args.connections} keep-alive clients,"
                f" {args.http_seconds} s (wrk)",
                ["backend", "requests/s", "p50 ms", "p99 ms", "non-2xx", "sold", "doctor"],
                rows,
            )
        if "million" not in skip:
            rows = []
            for name, target in targets(pg, "million"):
                r = million(target, args.tickets)
                rows.append([name, f"{r['build_s']:.0f}", f"{r['report_s']:.2f}", "< 1 s"])
            table(
                f"report on {args.tickets:,} tickets",
                ["backend", "build s", "report wall s (median of 3)", "goal"],
                rows,
            )
    finally:
        pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

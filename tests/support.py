"""Helpers shared by the order tests: a seeded database, CLI calls, database dumps."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

import tickethub_cli as th
from tickethub_cli import doctor, events, orders
from tickethub_cli.cli import app
from tickethub_cli.store.url import is_postgres

OK_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
TIMEOUT_CARD = "4000000000000119"


def tickethub_exe() -> str:
    exe = Path(sys.executable).with_name("tickethub")
    return str(exe) if exe.exists() else shutil.which("tickethub") or "tickethub"


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error(self) -> dict[str, Any]:
        return json.loads(self.stderr)["error"]


def cli(
    db: str, *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> Outcome:
    """Run the CLI in-process with --json; returns exit code and both streams."""
    result = CliRunner().invoke(app, ["--db", db, "--json", *args], env=env, input=input)
    return Outcome(result.exit_code, result.stdout, result.stderr)


def proc(db: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Outcome:
    """Run the installed console script as a real process with --json."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [tickethub_exe(), "--db", db, "--json", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def raw_query(db: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows of one statement (`?` placeholders) read straight from the database, bypassing
    TicketHub: a plain sqlite3 connection, or psycopg for a PostgreSQL URL."""
    if is_postgres(db):
        import psycopg

        from tickethub_cli.store.postgres import pg_sql

        with psycopg.connect(db, autocommit=True) as conn:
            return [tuple(r) for r in conn.execute(pg_sql(sql), args or None).fetchall()]
    conn = sqlite3.connect(db)
    try:
        return [tuple(r) for r in conn.execute(sql, args).fetchall()]
    finally:
        conn.close()


def raw_execute(db: str, sql: str, *args: object) -> None:
    """Write straight into the database, bypassing TicketHub (to stage a broken state)."""
    if is_postgres(db):
        import psycopg

        from tickethub_cli.store.postgres import pg_sql

        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(pg_sql(sql), args or None)
        return
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(sql, args)
    finally:
        conn.close()


class WriteLock:
    """The database's write lock held by another client (a second process, as far as
    TicketHub can tell): SQLite's BEGIN IMMEDIATE, or PostgreSQL's transaction-scoped
    advisory write lock (store/postgres.py). `hold()` takes it, `release()` lets go."""

    def __init__(self, db: str) -> None:
        self.db = db
        self._conn: Any = None

    def hold(self) -> WriteLock:
        if is_postgres(self.db):
            import psycopg

            from tickethub_cli.store.postgres import WRITE_LOCK

            self._conn = psycopg.connect(self.db, autocommit=True)
            self._conn.execute("BEGIN")
            self._conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        else:
            self._conn = sqlite3.connect(self.db, isolation_level=None)
            self._conn.execute("BEGIN IMMEDIATE")
        return self

    def release(self) -> None:
        if self._conn is not None:
            self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None

    def __enter__(self) -> WriteLock:
        return self.hold()

    def __exit__(self, *exc: object) -> None:
        self.release()


def dump(db: str) -> str:
    """The whole database as text (to compare before and after a refusal)."""
    if is_postgres(db):
        import psycopg

        lines = []
        with psycopg.connect(db, autocommit=True) as conn:  # one connection: dumps are frequent
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() ORDER BY table_name"
            ).fetchall()
            for (table,) in tables:
                for row in conn.execute(f'SELECT * FROM "{table}"').fetchall():
                    lines.append(f"{table}: {tuple(row)!r}")
        return "\n".join(sorted(lines))
    conn = sqlite3.connect(db)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def count(db: str, sql: str, *args: object) -> int:
    return raw_query(db, sql, *args)[0][0]


def seed(path: str, *, capacity: int = 10, max_per_order: int = 10) -> dict[str, int]:
    """A database with two events; event 1 has types GA and VIP, event 2 has type Other."""
    s, _, _ = th.init_session(path, operator="tester")
    e1 = events.create_event(s, name="Gig", starts_at="2027-06-01T20:00:00Z")
    e2 = events.create_event(s, name="Other", starts_at="2027-07-01T20:00:00Z")
    ga = events.add_ticket_type(
        s, e1["id"], name="GA", price="20.00", capacity=capacity, max_per_order=max_per_order
    )
    vip = events.add_ticket_type(s, e1["id"], name="VIP", price="50", capacity=5)
    other = events.add_ticket_type(s, e2["id"], name="Other", price="10", capacity=5)
    s.close()
    return {
        "event": e1["id"],
        "event2": e2["id"],
        "ga": ga["id"],
        "vip": vip["id"],
        "other": other["id"],
    }


def buy(s: th.Session, items: list[str], **kw: Any) -> orders.OrderResult:
    kw.setdefault("pay", "cash")
    return orders.purchase(s, orders.OrderRequest.parse(items=items, **kw))


def type_counts(db: str, type_id: int) -> tuple[int, int]:
    sold, held = raw_query(db, "SELECT sold, held FROM ticket_types WHERE id = ?", type_id)[0]
    return sold, held


def healthy(db: str) -> None:
    """Every doctor invariant holds on the database at `db`."""
    s = th.open_session(db)
    try:
        assert doctor.check(s) == []
    finally:
        s.close()


# Every command path, for the help and fuzz tests.
ALL_COMMANDS = [
    ["init"],
    ["event", "create"],
    ["event", "list"],
    ["event", "show"],
    ["event", "cancel"],
    ["ticket-type", "add"],
    ["ticket-type", "update"],
    ["ticket-type", "list"],
    ["purchase"],
    ["sell"],
    ["order", "create"],
    ["order", "pay"],
    ["order", "show"],
    ["order", "list"],
    ["order", "cancel"],
    ["payment", "callback"],
    ["payment", "ledger"],
    ["reconcile"],
    ["doctor"],
    ["config"],
    ["batch"],
    ["validate"],
    ["gate"],
    ["checkin", "undo"],
    ["ticket", "show"],
    ["ticket", "export"],
    ["report"],
    ["token", "create"],
    ["token", "list"],
    ["token", "revoke"],
    ["db", "copy"],
    ["serve"],
]


def reusable_db(make_db: Any, backend: str, name: str = "box") -> Any:
    """For property tests that want a fresh box office per example: a function returning an
    empty database target each call. SQLite: a new file each time. PostgreSQL: one database,
    emptied again (TRUNCATE … RESTART IDENTITY, identity kept) before each later use: a new
    database there costs ~0.25 s and ~15 MB of writes, which hundreds of examples feel."""
    counter = iter(range(10**9))
    made: list[str] = []

    def fresh() -> str:
        n = next(counter)
        if backend == "sqlite":
            return make_db(f"{name}{n}")
        if not made:
            made.append(make_db(name))
            return made[0]
        db = made[0]
        tables = raw_query(
            db,
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_name <> 'meta'",
        )
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            # the append-only tables refuse TRUNCATE (their triggers): a test reset, made by
            # the test server's superuser, runs with triggers off in this one session
            conn.execute("SET session_replication_role = replica")
            conn.execute(f"TRUNCATE {', '.join(t[0] for t in tables)} RESTART IDENTITY CASCADE")
            conn.execute("DELETE FROM meta WHERE key NOT IN ('application', 'schema_version')")
        return db

    return fresh

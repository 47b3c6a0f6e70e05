"""The database layer: transactions, busy retry with real processes, file mode, migrations,
refusal of foreign, newer or damaged files, append-only audit, schema CHECKs."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from support import cli, count, dump, proc, raw_execute, seed

import tickethub_cli as th
from tickethub_cli import db
from tickethub_cli.cli.errors import exit_code
from tickethub_cli.errors import ErrorCode, TicketHubError
from tickethub_cli.store.url import is_postgres


def test_transaction_commits_and_rolls_back_on_any_error(make_db):
    s, _, _ = th.init_session(make_db("t"))
    with db.transaction(s.conn) as c:
        c.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
    with pytest.raises(ZeroDivisionError), db.transaction(s.conn) as c:
        c.execute("INSERT INTO meta (key, value) VALUES ('b', '2')")
        _ = 1 / 0
    keys = [r[0] for r in s.conn.execute("SELECT key FROM meta WHERE key IN ('a', 'b')")]
    assert keys == ["a"]
    assert not s.conn.in_transaction
    with pytest.raises(RuntimeError), db.transaction(s.conn), db.transaction(s.conn):
        pass


HOLD_LOCK = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO meta (key, value) VALUES ('holder', 'x')")
print("locked", flush=True)
sys.stdin.readline()          # hold the write lock until the test says so
conn.execute("COMMIT")
print("released", flush=True)
"""


# PostgreSQL: another session holds the database's one write lock (the advisory lock every
# TicketHub write transaction takes first), with a write of its own
HOLD_LOCK_PG = r"""
import sys, psycopg
from tickethub_cli.store.postgres import WRITE_LOCK
conn = psycopg.connect(sys.argv[1], autocommit=True)
conn.execute("BEGIN")
conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
conn.execute("INSERT INTO meta (key, value) VALUES ('holder', 'x')")
print("locked", flush=True)
sys.stdin.readline()          # hold the write lock until the test says so
conn.execute("COMMIT")
print("released", flush=True)
"""


def _holder(path: str) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK_PG if is_postgres(path) else HOLD_LOCK, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


def test_busy_database_fails_with_db_busy_after_the_budget_and_changes_nothing(make_db):
    path = make_db("busy")
    seed(path)
    holder = _holder(path)
    try:
        before = dump(path)
        out = proc(
            path,
            "event",
            "create",
            "--name",
            "X",
            "--starts-at",
            "2027-01-01T00:00Z",
            env={"TICKETHUB_BUSY_TIMEOUT": "0.5"},
        )
        assert out.code == 7 and out.error["code"] == "DB_BUSY"
        assert "Traceback" not in out.stderr and out.stdout == ""
        assert dump(path) == before
    finally:
        holder.communicate("go\n", timeout=30)
    assert holder.returncode == 0


# The real CLI entry point, with the retry loop's back-off instrumented: it says "waiting" on
# stderr the first time it backs off, i.e. once it has actually met the other writer's lock.
WAIT_THEN_RUN = r"""
import sys, time, types
from tickethub_cli import db
from tickethub_cli.cli import main
told = []
def sleep(seconds):
    if not told:
        told.append(1)
        print("waiting", file=sys.stderr, flush=True)
    time.sleep(seconds)
db.time = types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep)
sys.argv = ["tickethub", *sys.argv[1:]]
main()
"""


CREATE_LATER = ["event", "create", "--name", "Later", "--starts-at", "2027-01-01T00:00:00Z"]


def test_busy_retry_waits_for_a_lock_released_within_the_budget(tmp_path):
    path = str(tmp_path / "wait.db")
    seed(path)
    holder = _holder(path)
    waiting = subprocess.Popen(
        [sys.executable, "-c", WAIT_THEN_RUN, "--db", path, "--json", *CREATE_LATER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TICKETHUB_BUSY_TIMEOUT": "30"},
    )
    try:
        assert waiting.stderr is not None and waiting.stderr.readline().strip() == "waiting"
    finally:
        holder.communicate("go\n", timeout=30)  # release while the command is retrying
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert json.loads(out)["event"]["id"] == 3
    assert holder.returncode == 0  # the holder's own transaction committed too


def test_transaction_helper_raises_db_busy_in_process(make_db, monkeypatch):
    path = make_db("inproc")
    seed(path)
    holder = _holder(path)
    try:
        monkeypatch.setenv("TICKETHUB_BUSY_TIMEOUT", "0.2")
        s = th.open_session(path)
        with pytest.raises(TicketHubError) as err, db.transaction(s.conn):
            pass
        assert err.value.code == ErrorCode.DB_BUSY and exit_code(err.value.code) == 7
    finally:
        holder.communicate("go\n", timeout=30)


def test_new_database_is_private_and_init_is_idempotent(tmp_path):
    path = str(tmp_path / "new.db")
    first = cli(path, "init")
    assert first.code == 0 and first.json["created"] is True
    assert first.json["schema_version"] == db.SCHEMA_VERSION
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    before = dump(path)
    again = cli(path, "init")
    assert again.code == 0 and again.json == {
        "db": path,
        "schema_version": db.SCHEMA_VERSION,
        "created": False,
    }
    assert dump(path) == before


def test_missing_database_is_not_found_and_creates_nothing(tmp_path):
    path = str(tmp_path / "missing.db")
    for args in (["event", "list"], ["purchase", "-i", "1:1", "--pay", "cash"], ["doctor"]):
        out = cli(path, *args)
        assert out.code == 3 and out.error["code"] == "NOT_FOUND", args
        assert not os.path.exists(path)


def test_newer_schema_is_refused(tmp_path):
    path = str(tmp_path / "newer.db")
    seed(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    conn.close()
    for args in (["event", "list"], ["init"]):
        out = cli(path, *args)
        assert out.code == 7 and out.error["code"] == "DB_ERROR"
        assert "newer" in out.error["message"]


def test_garbage_and_foreign_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(8192))
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (x TEXT)")
    conn.close()
    for path in (garbage, foreign):
        before = path.read_bytes()
        for args in (["event", "list"], ["init"]):
            out = cli(str(path), *args)
            assert out.code == 7 and out.error["code"] == "DB_ERROR", (path, args, out.stderr)
            assert "Traceback" not in out.stderr
        assert path.read_bytes() == before


def test_a_directory_is_not_a_database(tmp_path):
    out = cli(str(tmp_path), "event", "list")
    assert out.code == 7


@pytest.mark.parametrize("table", ["audit_log", "scans"])
def test_audit_log_and_scans_are_append_only(tmp_path, table):
    path = str(tmp_path / "audit.db")
    ids = seed(path)
    th.open_session(path).conn.close()
    conn = sqlite3.connect(path)
    conn.execute(  # one scan of evidence, written as the gate writes it
        "INSERT INTO scans (at, at_us, event_id, gate, operator, input, result)"
        " VALUES ('2027-01-01T00:00:00Z', 0, ?, 'g', 'op', 'X', 'UNKNOWN')",
        (ids["event"],),
    )
    for sql in (f"UPDATE {table} SET operator = 'mallory'", f"DELETE FROM {table}"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    conn.close()


def test_schema_checks_refuse_overselling_and_negative_counters(tmp_path):
    path = str(tmp_path / "checks.db")
    ids = seed(path, capacity=5)
    conn = sqlite3.connect(path)
    for sql in (
        "UPDATE ticket_types SET sold = 6 WHERE id = ?",
        "UPDATE ticket_types SET sold = 3, held = 3 WHERE id = ?",
        "UPDATE ticket_types SET held = -1 WHERE id = ?",
        "UPDATE ticket_types SET price_minor = -1 WHERE id = ?",
    ):
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(sql, (ids["ga"],))
    conn.close()


def test_wal_and_full_sync(tmp_path):
    path = str(tmp_path / "wal.db")
    s, _, _ = th.init_session(path)
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert s.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_the_library_exposes_every_domain_module():
    """Every module file of the package is reachable as `tickethub_cli.NAME`, so a new
    domain module cannot be forgotten in the lazy export table."""
    import pkgutil

    names = {m.name for m in pkgutil.iter_modules(th.__path__) if not m.ispkg}
    internal = {
        "__main__",
        "audit",
        "bounded",
        "faults",
        "idempotency",
        "inventory",
        "session",
        "validation",
    }  # plumbing, reached through the services
    for name in names - internal:
        assert getattr(th, name).__name__ == f"tickethub_cli.{name}", name
    assert th.open_session and th.init_session and th.TicketHubError
    with pytest.raises(AttributeError):
        _ = th.no_such_thing


# ------------------------------------------------------------------ the PostgreSQL analogues


def test_pg_busy_writer_waits_for_a_lock_released_within_the_budget(pg_server):
    url = pg_server.new_database()
    seed(url)
    holder = _holder(url)
    waiting = subprocess.Popen(
        [sys.executable, "-m", "tickethub_cli", "--db", url, "--json", *CREATE_LATER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TICKETHUB_BUSY_TIMEOUT": "30"},
    )
    try:  # until the server shows the command queued on the write lock
        name = urlsplit(url).path.lstrip("/")
        for _ in range(3000):
            if count(
                pg_server.url,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = ?"
                " AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
                name,
            ):
                break
            assert waiting.poll() is None, waiting.communicate()
        else:
            pytest.fail("the command never waited for the lock")
    finally:
        holder.communicate("go\n", timeout=30)
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert json.loads(out)["event"]["id"] == 3
    assert holder.returncode == 0


def test_pg_init_is_idempotent(pg_server):
    url = pg_server.new_database()
    first = cli(url, "init")
    assert first.code == 0 and first.json["created"] is True
    before = dump(url)
    again = cli(url, "init")
    assert again.code == 0 and again.json["created"] is False
    assert again.json["schema_version"] == db.SCHEMA_VERSION
    assert dump(url) == before


def test_pg_missing_or_empty_database_is_not_found_and_creates_nothing(pg_server):
    missing = pg_server.url_of("th_never_created")
    empty = pg_server.new_database()
    for args in (["event", "list"], ["purchase", "-i", "1:1", "--pay", "cash"], ["doctor"]):
        for url in (missing, empty):
            out = cli(url, *args)
            assert out.code == 3 and out.error["code"] == "NOT_FOUND", (url, args, out.stderr)
    out = cli(missing, "init")  # init makes the schema, never the database itself
    assert out.code == 3 and "createdb" in out.error.get("hint", "")
    assert dump(empty) == ""


def test_pg_newer_schema_is_refused(pg_server):
    url = pg_server.new_database()
    seed(url)
    raw_execute(
        url, "UPDATE meta SET value = ? WHERE key = 'schema_version'", str(db.SCHEMA_VERSION + 1)
    )
    for args in (["event", "list"], ["init"]):
        out = cli(url, *args)
        assert out.code == 7 and out.error["code"] == "DB_ERROR"
        assert "newer" in out.error["message"]


def test_pg_database_with_foreign_tables_is_refused(pg_server):
    url = pg_server.new_database()
    raw_execute(url, "CREATE TABLE notes (x TEXT)")
    raw_execute(url, "INSERT INTO notes VALUES ('keep me')")
    before = dump(url)
    for args in (["event", "list"], ["init"]):
        out = cli(url, *args)
        assert out.code == 7 and out.error["code"] == "DB_ERROR", (args, out.stderr)
        assert "Traceback" not in out.stderr
    assert dump(url) == before


@pytest.mark.parametrize("table", ["audit_log", "scans"])
def test_pg_audit_log_and_scans_are_append_only(pg_server, table):
    import psycopg

    url = pg_server.new_database()
    ids = seed(url)
    raw_execute(
        url,
        "INSERT INTO scans (at, at_us, event_id, gate, operator, input, result)"
        " VALUES ('2027-01-01T00:00:00Z', 0, ?, 'g', 'op', 'X', 'UNKNOWN')",
        ids["event"],
    )
    # TRUNCATE fires no row trigger: it has its own (it emptied both tables before)
    for sql in (
        f"UPDATE {table} SET operator = 'mallory'",
        f"DELETE FROM {table}",
        f"TRUNCATE {table}",
    ):
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="append-only"):
            raw_execute(url, sql)
    assert count(url, f"SELECT count(*) FROM {table}") > 0


def test_pg_schema_checks_refuse_overselling_and_negative_counters(pg_server):
    import psycopg

    url = pg_server.new_database()
    ids = seed(url, capacity=5)
    for sql in (
        "UPDATE ticket_types SET sold = 6 WHERE id = ?",
        "UPDATE ticket_types SET sold = 3, held = 3 WHERE id = ?",
        "UPDATE ticket_types SET held = -1 WHERE id = ?",
        "UPDATE ticket_types SET price_minor = -1 WHERE id = ?",
    ):
        with pytest.raises(psycopg.errors.CheckViolation):
            raw_execute(url, sql, ids["ga"])

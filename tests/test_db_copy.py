"""`tickethub db copy`: a whole box office moves to another database (SQLite → PostgreSQL,
PostgreSQL → SQLite, like to like) in one transaction on the target, ids and all; a
non-empty target is refused with nothing changed; doctor on the copy agrees with the
source; the copy goes on selling where the source stopped."""

from __future__ import annotations

import pytest
from support import OK_CARD, cli, count, dump, proc, raw_execute, raw_query, seed

from tickethub_cli.store.copy import TABLES

EVERY_TABLE_NOTE = "the source below has rows in every table, so each one is really copied"


def rich_box_office(path: str) -> dict[str, int]:
    """A box office with rows in every table (through the CLI where it can, raw rows for
    what only the server writes)."""
    ids = seed(path)

    def ok(*args: str) -> dict:
        out = cli(path, *args)
        assert out.code == 0, (args, out.stderr)
        return out.json

    card = ok("sell", "-i", f"{ids['ga']}:2", "--pay", "card", "--card", OK_CARD)["order"]
    ok("sell", "-i", f"{ids['vip']}:1", "--pay", "cash")
    refunded = ok("sell", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD)["order"]
    ok("order", "cancel", str(refunded["id"]), "--reason", "asked")
    ok("order", "create", "-i", f"{ids['ga']}:1", "--email", "p@example.org")  # PENDING
    ok("config", "--hold-minutes", "20")  # a meta row
    ok("token", "create", "--role", "gate", "--event", str(ids["event"]), "--name", "north")
    code = card["tickets"][0]["code"]
    assert cli(path, "validate", code, "--event", str(ids["event"])).code == 0
    assert cli(path, "validate", "NOPE", "--event", str(ids["event"])).code != 0
    raw_execute(
        path,
        "INSERT INTO callbacks (callback_id, order_id, status, amount_minor, outcome,"
        " payload_sha256, received_at, operator) VALUES ('cb_1', ?, 'succeeded', 4000,"
        " 'known', 'ab', '2027-01-01T00:00:00Z', 'webhook')",
        card["id"],
    )
    raw_execute(
        path,
        "INSERT INTO http_responses (key, request_sha256, status, body, created_at)"
        " VALUES ('k1', 'cd', 201, '{\"replayed\":false}', '2027-01-01T00:00:00Z')",
    )
    raw_execute(path, "INSERT INTO token_misses (token_id, at_us, kind) VALUES (1, 5, 'UNKNOWN')")
    for table in TABLES:
        assert count(path, f"SELECT count(*) FROM {table}") > 0, (table, EVERY_TABLE_NOTE)
    return {**ids, "code": code}  # type: ignore[dict-item]


def table_rows(path: str, table: str) -> list[tuple]:
    rows = raw_query(path, f"SELECT * FROM {table}")
    if table == "meta":
        rows = [r for r in rows if r[0] not in ("application", "schema_version")]
    if table == "audit_log":  # the copy's own row, recorded on the target only
        rows = [r for r in rows if r[2:5] != ("tester", "database", None) or r[5] != "copy"]
    return sorted(rows, key=repr)


def assert_same_box_office(source: str, target: str) -> None:
    for table in TABLES:
        assert table_rows(target, table) == table_rows(source, table), table


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    path = str(tmp_path_factory.mktemp("copy-src") / "box.db")
    return path, rich_box_office(path)


def test_copy_moves_every_row_and_the_copy_sells_on(source, make_db):
    src, ids = source
    target = make_db("target")
    out = proc(src, "--operator", "tester", "db", "copy", "--to", target)  # --from: --db
    assert out.code == 0, out.stderr
    summary = out.json["copy"]
    assert summary["created"] is True and summary["from"] == src
    for table in TABLES:
        assert summary["rows"][table] == len(table_rows(src, table)), table
    assert summary["total_rows"] == sum(summary["rows"].values())
    assert_same_box_office(src, target)
    copied = raw_query(target, "SELECT operator, data FROM audit_log WHERE action = 'copy'")
    assert len(copied) == 1 and copied[0][0] == "tester" and src in copied[0][1]

    # doctor agrees (healthy on both), and the copy goes on: ids continue past the copied
    assert proc(src, "doctor").json == proc(target, "doctor").json == {"ok": True, "problems": []}
    top = {t: count(src, f"SELECT max(id) FROM {t}") for t in ("events", "orders", "tickets")}
    event = cli(target, "event", "create", "--name", "New", "--starts-at", "2027-09-01T20:00Z")
    assert event.json["event"]["id"] == top["events"] + 1
    sold = cli(target, "sell", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD)
    assert sold.code == 0, sold.stderr
    assert sold.json["order"]["id"] == top["orders"] + 1
    assert sold.json["order"]["tickets"][0]["id"] == top["tickets"] + 1
    again = cli(target, "validate", ids["code"], "--event", str(ids["event"]))
    assert again.code == 10  # admitted at the source: ALREADY_USED on the copy
    assert proc(target, "doctor").code == 0


def test_postgresql_back_to_sqlite(source, pg_server, tmp_path):
    src, _ = source
    pg = pg_server.new_database()
    assert proc(src, "--operator", "tester", "db", "copy", "--to", pg).code == 0
    back = str(tmp_path / "back.db")
    out = proc(pg, "--operator", "tester", "db", "copy", "--from", pg, "--to", back)
    assert out.code == 0, out.stderr
    assert out.json["copy"]["rows"]["tickets"] == count(src, "SELECT count(*) FROM tickets")
    assert_same_box_office(src, back)
    assert proc(back, "doctor").json == {"ok": True, "problems": []}


def test_doctor_on_the_copy_finds_what_it_finds_on_the_source(make_db, tmp_path):
    src = str(tmp_path / "broken.db")
    ids = seed(src)
    assert cli(src, "sell", "-i", f"{ids['ga']}:2", "--pay", "cash").code == 0
    raw_execute(src, "UPDATE ticket_types SET sold = 1 WHERE id = ?", ids["ga"])  # a broken count
    before = proc(src, "doctor")
    assert before.code == 9
    target = make_db("copy")
    assert proc(src, "db", "copy", "--to", target).code == 0
    after = proc(target, "doctor")
    assert (after.code, after.stdout) == (9, before.stdout)


def test_a_non_empty_target_is_refused_and_left_as_it_was(source, make_db):
    src, _ = source
    target = make_db("full")
    seed(target)
    before = dump(target)
    out = proc(src, "db", "copy", "--to", target)
    assert out.code == 4 and out.error["code"] == "INVALID_STATE", out.stderr
    assert "not empty" in out.error["message"] and "events" in out.error["message"]
    assert dump(target) == before


def test_an_initialised_empty_target_is_filled(source, make_db):
    src, _ = source
    target = make_db("empty")
    assert cli(target, "init").code == 0
    out = proc(src, "--operator", "tester", "db", "copy", "--to", target)
    assert out.code == 0, out.stderr
    assert out.json["copy"]["created"] is False
    assert_same_box_office(src, target)


def test_a_failed_copy_leaves_the_target_untouched(pg_server, tmp_path):
    """PostgreSQL refuses a NUL in text: the copy fails at `scans`, after the tables before
    it were written; one transaction, so the target has not even the schema."""
    src = str(tmp_path / "nul.db")
    ids = seed(src)
    assert cli(src, "sell", "-i", f"{ids['ga']}:1", "--pay", "cash").code == 0
    raw_execute(
        src,
        "INSERT INTO scans (at, at_us, operator, input, result) VALUES ('x', 0, 'op', ?, 'X')",
        "bad\x00byte",
    )
    target = pg_server.new_database()
    out = proc(src, "db", "copy", "--to", target)
    assert out.code == 7 and out.error["code"] == "DB_ERROR", out.stderr
    assert dump(target) == ""  # no table at all
    assert count(target, "SELECT count(*) FROM pg_stat_user_tables") == 0


def test_refusals_before_anything_is_written(tmp_path):
    src = str(tmp_path / "box.db")
    seed(src)
    same = proc(src, "db", "copy", "--from", src, "--to", src)
    assert same.code == 2 and same.error["code"] == "INVALID_INPUT"
    missing = proc(
        src, "db", "copy", "--from", str(tmp_path / "no.db"), "--to", str(tmp_path / "x.db")
    )
    assert missing.code == 3 and missing.error["code"] == "NOT_FOUND"
    assert not (tmp_path / "x.db").exists()
    foreign = tmp_path / "foreign.db"
    raw_execute(str(foreign), "CREATE TABLE notes (x TEXT)")
    out = proc(src, "db", "copy", "--to", str(foreign))
    assert out.code == 7 and out.error["code"] == "DB_ERROR"
    assert raw_query(str(foreign), "SELECT name FROM sqlite_master") == [("notes",)]


def test_progress_bar_on_a_terminal_only(source, tmp_path):
    """On a terminal the copy draws a progress bar on stderr (table by table); piped, or with
    --json, stderr stays empty."""
    import os
    import pty
    import subprocess

    from support import tickethub_exe

    src, _ = source
    piped = proc(src, "db", "copy", "--to", str(tmp_path / "piped.db"))
    assert piped.code == 0 and piped.stderr == ""
    master, slave = pty.openpty()
    done = subprocess.run(
        [tickethub_exe(), "--db", src, "db", "copy", "--to", str(tmp_path / "tty.db")],
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
        timeout=60,
    )
    os.close(slave)
    drawn = b""
    try:
        while chunk := os.read(master, 65536):
            drawn += chunk
    except OSError:  # the terminal's other end has closed: everything was read
        pass
    os.close(master)
    assert done.returncode == 0
    assert b"token_misses" in drawn and b"\x1b[" in drawn  # the last table, drawn
    assert "copied" in done.stdout

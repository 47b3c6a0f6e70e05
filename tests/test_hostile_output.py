"""Hostile text on the way out (issue 10, output side): whatever a buyer, a file or the
database holds is shown literally and inertly, a committed result is always reported, CSV
cells cannot run as formulas, ticket files cannot be redirected, admissions are audited."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from support import OK_CARD, Outcome, buy, cli, count, dump, raw_execute, raw_query, seed
from typer.testing import CliRunner

import tickethub_cli as th
from tickethub_cli import checkin, events, render
from tickethub_cli.cli import app

# Everything a terminal must never receive raw from stored text: C0 controls but the line
# break, DEL, C1, bidi marks, embeddings, overrides and isolates.
RAW_UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)
POISON = (
    "\x1b[2J\x1b[H ADMITTED \x9b31m \x9d8;;http://x\x07 \u202eevil\u202c"
    " \u2066iso\u2069 \u200f\u061c\x7f [/] [bold]b[/bold]"
)
WIDE = {"COLUMNS": "400"}  # no folding inside the strings the tests look for


def human(
    db: str, *args: str, input: str | None = None, env: dict[str, str | None] | None = None
) -> Outcome:
    """Run the CLI in-process in human mode (no --json), as a person would see it."""
    result = CliRunner().invoke(app, ["--db", db, *args], input=input, env={**WIDE, **(env or {})})
    return Outcome(result.exit_code, result.stdout, result.stderr)


def assert_inert(out: Outcome) -> None:
    for stream in (out.stdout, out.stderr):
        found = RAW_UNSAFE.search(stream)
        assert found is None, (repr(found.group()), stream[-1500:])


@pytest.fixture
def box(make_db):
    path = make_db("hostile")
    ids = seed(path)
    return path, ids


# --- one rule: rendered literally, never as markup -----------------------------------------


def test_markup_in_a_buyer_name_never_fails_a_committed_sale(box):
    path, ids = box
    out = human(
        path, "purchase", "-i", f"{ids['ga']}:1", "--name", "[/]", "--pay", "card", "--card",
        OK_CARD, "-k", "markup-1",
    )  # fmt: skip
    assert out.code == 0, out.stderr
    assert "[/]" in out.stdout and "markup-1" in out.stdout
    assert count(path, "SELECT count(*) FROM orders") == 1


def test_markup_in_an_email_keeps_order_list_working_for_everyone(box):
    path, ids = box
    s = th.open_session(path)
    buy(s, [f"{ids['ga']}:1"], email="[/x]@evil.org")
    s.close()
    out = human(path, "order", "list")
    assert out.code == 0, out.stderr
    assert "[/x]@evil.org" in out.stdout


def test_markup_in_a_ticket_type_name_keeps_event_show_and_type_list_working(box):
    path, ids = box
    s = th.open_session(path)
    events.add_ticket_type(s, ids["event"], name="[/]", price="1", capacity=1)
    s.close()
    for args in (("event", "show", str(ids["event"])), ("ticket-type", "list", str(ids["event"]))):
        out = human(path, *args)
        assert out.code == 0, (args, out.stderr)
        assert "│ [/] " in out.stdout


def test_markup_in_a_gate_name_keeps_the_report_working(box):
    path, ids = box
    s = th.open_session(path)
    code = buy(s, [f"{ids['ga']}:1"]).order["tickets"][0]["code"]
    checkin.Gate(s, ids["event"], "[/]").scan(code)
    checkin.Gate(s, ids["event"], "north").scan(code)  # a code tried at several gates
    s.close()
    out = human(path, "report", "--event", str(ids["event"]))
    assert out.code == 0, out.stderr
    assert "[/], north" in out.stdout


def test_markup_in_a_json_lines_field_name_keeps_the_batch_and_its_summary(box, tmp_path):
    path, ids = box
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        json.dumps(
            {"idempotency_key": "b1", "ticket_type_id": ids["ga"], "quantity": 1, "pay": "cash"}
        )
        + "\n"
        + json.dumps({"idempotency_key": "b2", "ticket_type_id": ids["ga"], "[/]": 1})
        + "\n"
    )
    out = human(path, "batch", str(rows))
    assert out.code == 8, out.stderr
    assert "Batch summary" in out.stdout
    assert out.stderr == "warning: ignored field(s) that batch does not use: [/]\n"


def test_links_hidden_text_and_emoji_codes_are_printed_as_typed(box):
    path, ids = box
    name = "[link=https://x]a[/link] [conceal]x[/conceal] :smile:"
    out = human(
        path, "sell", "-i", f"{ids['ga']}:1", "--name", name, "--pay", "cash",
        env={"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"},
    )  # fmt: skip
    assert out.code == 0, out.stderr
    assert name in out.stdout
    assert "\x1b]8;" not in out.stdout and "\x1b[8m" not in out.stdout  # no link, no conceal
    assert "😄" not in out.stdout


# --- controls and bidi: escaped on the way out ----------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain [text] ünïcödé 名前", "plain [text] ünïcödé 名前"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("\x00\x07\x7f", "\\x00\\x07\\x7f"),
        ("\x9b31m\x9d", "\\x9b31m\\x9d"),
        ("\u202eevil\u202c", "\\u202eevil\\u202c"),
        ("\u2066\u2069\u200e\u200f\u061c", "\\u2066\\u2069\\u200e\\u200f\\u061c"),
        ("\udcff", "\\udcff"),
        (None, ""),
        (42, "42"),
    ],
)
def test_safe_text_escapes_controls_and_bidi(raw, shown):
    assert render.safe_text(raw) == shown


def _poisoned_box(path: str) -> dict[str, Any]:
    """A database whose every displayed text column holds terminal escapes, C1 controls and
    bidi overrides, written into the database directly (input validation would refuse them)."""
    ids = seed(path)
    s = th.open_session(path, operator="clerk")
    sold = buy(s, [f"{ids['ga']}:2"], email="ann@example.org", name="Ann").order
    checkin.Gate(s, ids["event"], "north").scan(sold["tickets"][0]["code"])
    s.close()
    raw_execute(path, "UPDATE events SET name = ?, venue = ?", POISON, POISON)
    raw_execute(path, "UPDATE ticket_types SET name = ?", POISON)
    raw_execute(
        path, "UPDATE orders SET name = ?, email = ?, idempotency_key = ?", POISON, POISON, POISON
    )
    raw_execute(
        path, "UPDATE tickets SET checked_in_gate = ? WHERE checked_in_at IS NOT NULL", POISON
    )
    raw_execute(
        path,
        "INSERT INTO audit_log (at, operator, entity, entity_id, action, from_state,"
        " to_state, reason) VALUES ('2027-01-01T00:00:00Z', ?, 'order', ?, 'note', 'PAID',"
        " 'PAID', ?)",
        POISON,
        sold["id"],
        POISON,
    )
    raw_execute(
        path,
        "INSERT INTO scans (at, at_us, event_id, gate, operator, input, ticket_id, result,"
        " dry_run) SELECT at, at_us + 1, event_id, ?, ?, input, ticket_id, 'ALREADY_USED', 0"
        " FROM scans",
        POISON,
        POISON,
    )
    return {"db": path, "ids": ids, "order": sold, "codes": [t["code"] for t in sold["tickets"]]}


def test_human_output_of_every_read_command_is_inert_whatever_was_stored(make_db, tmp_path):
    box = _poisoned_box(make_db("poison"))
    db, event, order = box["db"], str(box["ids"]["event"]), str(box["order"]["id"])
    used, fresh = box["codes"]
    batch_file = tmp_path / "rows.jsonl"
    batch_file.write_text(
        json.dumps({"idempotency_key": POISON, "ticket_type_id": 1, POISON: 1}) + "\n"
        + json.dumps({"idempotency_key": "k2", "ticket_type_id": 1, "quantity": 1,
                      "email": POISON, "pay": "cash"}) + "\n"
    )  # fmt: skip
    runs = {
        "event list": human(db, "event", "list"),
        "event show": human(db, "event", "show", event),
        "ticket-type list": human(db, "ticket-type", "list", event),
        "order list": human(db, "order", "list"),
        "order show": human(db, "order", "show", order),
        "report": human(db, "report", "--event", event),
        "ticket show": human(db, "ticket", "show", used),
        "validate used": human(db, "validate", used, "--event", event),
        "validate fresh": human(db, "validate", fresh, "--event", event, "--dry-run"),
        "validate junk": human(db, "validate", POISON, "--event", event),
        "gate": human(db, "gate", "--event", event, input=f"{used}\n{POISON}\n{fresh}\n"),
        "batch": human(db, "batch", str(batch_file)),
        "unknown command": human(db, POISON),
    }
    for name, out in runs.items():
        assert out.code not in (1,), (name, out.stderr)
        assert "Traceback" not in out.stderr, name
        try:
            assert_inert(out)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
    assert "\\x1b[2J" in runs["event list"].stdout  # shown, as an escape
    assert "\\u202eevil\\u202c" in runs["order show"].stdout  # the operator and reason too
    assert "\\x9b31m" in runs["validate used"].stdout  # the stored first gate


def test_json_output_carries_hostile_text_exactly_but_inertly(make_db):
    box = _poisoned_box(make_db("poison"))
    out = cli(box["db"], "order", "show", str(box["order"]["id"]))
    assert out.code == 0
    assert RAW_UNSAFE.search(out.stdout) is None  # written as \\uXXXX escapes
    assert out.json["order"]["email"] == POISON  # the same string to any JSON parser


# --- input side of the same rule ------------------------------------------------------------

BAD_TEXT = ["a\x1b[2Jb", "a\x9bb", "a\x85b", "\u202eevil", "a\u2066b", "a\u200fb", "a\u061cb"]


@pytest.mark.parametrize("bad", BAD_TEXT)
def test_names_emails_reasons_and_operators_refuse_controls_and_bidi(box, bad):
    path, ids = box
    sale = ["sell", "-i", f"{ids['ga']}:1", "--pay", "cash"]
    attempts = [
        ["event", "create", "--name", bad, "--starts-at", "2027-06-01T20:00:00Z"],
        ["event", "create", "--name", "E", "--venue", bad, "--starts-at", "2027-06-01T20:00:00Z"],
        ["ticket-type", "add", str(ids["event"]), "--name", bad, "--price", "1", "--capacity", "1"],
        [*sale, "--name", bad],
        [*sale, "--email", f"{bad}@example.org"],
        ["--operator", bad, *sale],
        ["validate", "x", "--event", str(ids["event"]), "--gate", bad],
    ]
    before = dump(path)
    for args in attempts:
        out = cli(path, *args)
        assert out.code == 2 and out.error["code"] == "INVALID_INPUT", (args, out.stderr)
    order = cli(path, *sale).json["order"]["id"]
    before = dump(path)
    out = cli(path, "order", "cancel", str(order), "--reason", bad)
    assert out.code == 2 and out.error["code"] == "INVALID_INPUT"
    assert dump(path) == before


@pytest.mark.parametrize("source", ["TICKETHUB_OPERATOR", "LOGNAME"])
def test_an_operator_from_the_environment_with_escapes_is_refused(box, source):
    path, ids = box
    env: dict[str, str | None] = {"TICKETHUB_OPERATOR": None, "USER": None, "LNAME": None}
    env[source] = "mallory\x9b2J\u202e"
    before = dump(path)
    result = CliRunner().invoke(
        app, ["--db", path, "--json", "sell", "-i", f"{ids['ga']}:1", "--pay", "cash"], env=env
    )
    assert result.exit_code == 2, result.stderr
    assert json.loads(result.stderr)["error"]["code"] == "INVALID_INPUT"
    assert dump(path) == before


def test_an_email_with_an_escape_is_refused(box):
    path, ids = box
    out = cli(path, "sell", "-i", f"{ids['ga']}:1", "--pay", "cash", "--email", "a\x1b[2J@x.org")
    assert out.code == 2 and out.error["code"] == "INVALID_INPUT"
    assert count(path, "SELECT count(*) FROM orders") == 0


# --- output after a commit cannot fail ------------------------------------------------------


def test_a_drawing_failure_after_a_sale_still_reports_the_order_and_its_key(box, monkeypatch):
    path, ids = box

    def broken(*_args: Any, **_kw: Any) -> None:
        raise RuntimeError("the renderer broke")

    monkeypatch.setattr(render, "fields", broken)
    out = human(
        path, "purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD,
        "-k", "fallback-1", "--name", "\x1b[2J is not ok here",
    )  # fmt: skip
    assert out.code == 2  # the escape is refused at input: nothing was sold
    out = human(
        path, "purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD,
        "-k", "fallback-1",
    )  # fmt: skip
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "order.status: PAID" in lines and "order.idempotency_key: fallback-1" in lines
    assert any(line.startswith("order.id: ") for line in lines) and "replayed: false" in lines
    assert "RuntimeError" in out.stderr and "Traceback" not in out.stderr
    assert count(path, "SELECT count(*) FROM orders") == 1


def test_the_plain_fallback_is_escaped_too(box, monkeypatch):
    path, _ = box
    raw_execute(path, "UPDATE events SET name = ?", POISON)

    def broken(*_args: Any, **_kw: Any) -> None:
        raise RuntimeError("the renderer broke")

    monkeypatch.setattr(render, "table", broken)
    out = human(path, "event", "list")
    assert out.code == 0
    assert "events[0].name: \\x1b[2J" in out.stdout
    assert_inert(out)


def test_a_drawing_failure_after_a_batch_still_reports_its_summary(box, monkeypatch, tmp_path):
    path, ids = box
    rows = tmp_path / "rows.csv"
    rows.write_text(f"idempotency_key,ticket_type_id,quantity,pay\nk1,{ids['ga']},1,cash\n")

    def broken(*_args: Any, **_kw: Any) -> None:
        raise RuntimeError("the renderer broke")

    monkeypatch.setattr(render, "console", broken)  # the batch table and summary line use it
    out = human(path, "batch", str(rows))
    assert out.code == 0, out.stderr
    assert "summary.rows: 1" in out.stdout.splitlines()
    assert "summary.ok: 1" in out.stdout.splitlines()


# --- CSV formula injection ------------------------------------------------------------------


def test_report_csv_neutralises_formula_cells_and_keeps_numbers(box):
    path, ids = box
    s = th.open_session(path)
    hostile = ['=HYPERLINK("http://evil","x")', "+1+1", "-2+3", "@SUM(A1)"]
    for name in hostile:
        events.add_ticket_type(s, ids["event"], name=name, price="1", capacity=3)
    s.close()
    # tab and CR cannot be typed into a name (refused at input): stored directly
    raw_execute(path, "UPDATE ticket_types SET name = ? WHERE name = 'GA'", "\t=1+1")
    raw_execute(path, "UPDATE ticket_types SET name = ? WHERE name = 'VIP'", "\r=1+1")
    out = cli(path, "report", "--event", str(ids["event"]), "--csv")
    assert out.code == 0
    rows = list(csv.reader(io.StringIO(out.stdout, newline="")))
    names = [r[1] for r in rows[1:-1]]
    assert names == ["'\t=1+1", "'\r=1+1", *("'" + n for n in hostile)]
    assert rows[0][6:8] == ["revenue", "currency"]
    for r in rows[1:]:  # numbers stay numbers (money in major units), never prefixed
        assert all(cell.isdigit() for cell in r[2:6] + r[8:]), r
        assert re.fullmatch(r"\d+\.\d{2}", r[6]) and r[7] == "EUR", r
    assert rows[-1][1] == "TOTAL"


# --- ticket files ---------------------------------------------------------------------------


def _sold(path: str, ids: dict[str, int], quantity: int = 2) -> dict[str, Any]:
    s = th.open_session(path)
    try:
        return buy(s, [f"{ids['ga']}:{quantity}"]).order
    finally:
        s.close()


@pytest.mark.parametrize("backend", ["sqlite"])  # about the files written, not the database
def test_ticket_export_replaces_a_planted_symlink_and_never_writes_its_target(box, tmp_path):
    path, ids = box
    order = _sold(path, ids, 1)
    ticket = order["tickets"][0]
    folder = tmp_path / "print"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    # planted under the name used now, and under the name older versions used
    old_name = f"order{order['id']}-ticket{ticket['id']}-{ticket['code']}.png"
    for name in (f"ticket-{ticket['id']}.png", old_name):
        (folder / name).symlink_to(victim)
    out = cli(path, "ticket", "export", "--order", str(order["id"]), "--dir", str(folder))
    assert out.code == 0, out.stderr
    assert victim.read_text() == "precious"
    written = folder / f"ticket-{ticket['id']}.png"
    assert not written.is_symlink() and written.read_bytes().startswith(b"\x89PNG")
    assert out.json["files"] == [str(written)]


@pytest.mark.parametrize("backend", ["sqlite"])  # about the files written, not the database
def test_ticket_files_are_private_and_named_by_ticket_id(box, tmp_path):
    path, ids = box
    order = _sold(path, ids)
    folder = tmp_path / "new" / "print"
    old_umask = os.umask(0o022)
    try:
        out = cli(path, "ticket", "export", "--order", str(order["id"]), "--dir", str(folder))
    finally:
        os.umask(old_umask)
    assert out.code == 0, out.stderr
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    names = sorted(os.listdir(folder))
    assert names == sorted(f"ticket-{t['id']}.png" for t in order["tickets"])
    for t in order["tickets"]:
        assert stat.S_IMODE((folder / f"ticket-{t['id']}.png").stat().st_mode) == 0o600
        assert t["code"].replace("-", "") not in "".join(names).replace("-", "")
    again = cli(path, "ticket", "export", "--order", str(order["id"]), "--dir", str(folder))
    assert again.code == 0 and sorted(os.listdir(folder)) == names  # a reprint replaces


def test_print_dir_is_created_only_after_the_sale(box, tmp_path):
    path, ids = box
    folder = tmp_path / "door" / "print"
    refused = cli(
        path, "sell", "-i", f"{ids['vip']}:6", "--pay", "cash", "--print-dir", str(folder)
    )
    assert refused.code == 5  # sold out: capacity 5
    declined = cli(
        path, "sell", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", "4000000000000002",
        "--print-dir", str(folder),
    )  # fmt: skip
    assert declined.code == 6
    assert not (tmp_path / "door").exists()
    sold = cli(path, "sell", "-i", f"{ids['ga']}:1", "--pay", "cash", "--print-dir", str(folder))
    assert sold.code == 0 and len(sold.json["order"]["printed"]) == 1
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    printed = Path(sold.json["order"]["printed"][0])
    assert printed.name == f"ticket-{sold.json['order']['tickets'][0]['id']}.png"
    assert stat.S_IMODE(printed.stat().st_mode) == 0o600


# --- admissions in the append-only audit log ------------------------------------------------


def test_admissions_and_undos_are_in_the_audit_log(box):
    path, ids = box
    order = _sold(path, ids)
    first, second = (t["code"] for t in order["tickets"])
    event = str(ids["event"])

    def audited() -> list[tuple[Any, ...]]:
        return raw_query(
            path,
            "SELECT entity, entity_id, action, operator, data FROM audit_log"
            " WHERE entity = 'ticket' ORDER BY id",
        )

    assert cli(path, "validate", first, "--event", event, "--dry-run").code == 0
    assert cli(path, "validate", "nonsense", "--event", event).code == 14
    assert audited() == []  # a dry run or a rejection changes no ticket
    assert (
        cli(path, "--operator", "door-1", "validate", first, "--event", event, "-g", "n").code == 0
    )
    assert cli(path, "validate", first, "--event", event).code == 10
    gate = cli(path, "--operator", "door-2", "gate", "--event", event, input=f"{second}\n")
    assert gate.code == 0
    assert cli(path, "--operator", "boss", "checkin", "undo", first, "--event", event).code == 0
    rows = audited()
    t1, t2 = (t["id"] for t in order["tickets"])
    assert [r[:4] for r in rows] == [
        ("ticket", t1, "checkin", "door-1"),
        ("ticket", t2, "checkin", "door-2"),
        ("ticket", t1, "checkin_undo", "boss"),
    ]
    assert json.loads(rows[0][4])["gate"] == "n"


def _on_a_terminal(args: list[str], stdin: str) -> tuple[int, str]:
    """Run the console script with stdout on a real pseudo-terminal (Rich draws panels and
    colours there), returning its exit code and everything it wrote."""
    import pty
    import select
    import subprocess

    from support import tickethub_exe

    master, slave = pty.openpty()
    p = subprocess.Popen(
        [tickethub_exe(), *args],
        stdin=subprocess.PIPE,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "COLUMNS": "200", "TERM": "xterm"},
    )
    os.close(slave)
    assert p.stdin is not None
    p.stdin.write(stdin.encode())
    p.stdin.close()
    chunks = []
    while select.select([master], [], [], 30)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return p.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_gate_panels_on_a_terminal_show_stored_text_inertly(make_db):
    """On a terminal Rich writes its own colour codes, so the check is on what came from
    the database: the stored first gate (escapes, C1, bidi, markup) appears escaped."""
    box = _poisoned_box(make_db("poison"))
    event = str(box["ids"]["event"])
    used = box["codes"][0]
    for args, stdin in (
        (["--db", box["db"], "gate", "--event", event], f"{used}\n"),
        (["--db", box["db"], "validate", used, "--event", event], ""),
    ):
        code, screen = _on_a_terminal(args, stdin)
        assert code in (0, 10), screen[-2000:]
        assert "ALREADY_USED" in screen and "\\x1b[2J\\x1b[H ADMITTED" in screen
        assert "\x1b[2J" not in screen and "\x1b[H" not in screen
        assert re.search("[\x80-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]", screen) is None
        assert "[/]" in screen and "[bold]b[/bold]" in screen
        assert "\\x0a" not in screen  # the panel's own line breaks are not escaped

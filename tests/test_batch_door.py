"""`batch` at the door (issue 11), as real processes: web-shop exports with extra columns,
`;` and tab delimiters, the failure kinds counted apart, `--show`, tables that fit 80 columns."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from support import DECLINED_CARD, OK_CARD, TIMEOUT_CARD, count, proc, seed, tickethub_exe


@pytest.fixture
def shop(make_db):
    path = make_db("door")
    return path, seed(path, capacity=50, max_per_order=10)


def human(db: str, *args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
    """A real process in human mode, its terminal `columns` wide."""
    return subprocess.run(
        [tickethub_exe(), "--db", db, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"},
        timeout=60,
    )


def summary_of(stdout: str) -> dict:
    return json.loads(stdout.splitlines()[-1])["summary"]


def shop_export(ids: dict[str, int], delimiter: str = ",") -> str:
    """What a web shop exports: a BOM, names in its own case and spacing, and columns of its
    own (order_ref, currency, notes) between ours."""
    header = ["Order_Ref", " Idempotency_Key", "TICKET_TYPE_ID", "quantity", "Currency"]
    header += ["email", "Name", "pay", "card", "notes "]
    rows = [
        ["A-1", "web-1", ids["ga"], 2, "EUR", "ann@example.org", "Ann", "card", OK_CARD, "gift"],
        ["A-2", "web-2", ids["ga"], 1, "EUR", "", "", "cash", "", ""],
        ["A-3", "web-3", ids["vip"], 1, "EUR", "cy@example.org", "Cy", "cash", "", "aisle"],
    ]
    lines = [delimiter.join(header)] + [delimiter.join(str(c) for c in row) for row in rows]
    return "\ufeff" + "\n".join(lines) + "\n"


def test_a_web_shop_export_with_extra_columns_runs_and_names_them_once(shop, tmp_path):
    db, ids = shop
    f = tmp_path / "export.csv"
    f.write_text(shop_export(ids), encoding="utf-8")
    out = proc(db, "batch", str(f))
    assert out.code == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()[:-1]]
    assert [(r["idempotency_key"], r["ok"]) for r in rows] == [
        ("web-1", True),
        ("web-2", True),
        ("web-3", True),
    ]
    assert rows[0]["order"]["name"] == "Ann" and len(rows[0]["order"]["tickets"]) == 2
    summary = summary_of(out.stdout)
    assert summary["ignored_columns"] == ["Order_Ref", "Currency", "notes"]
    assert (summary["rows"], summary["ok"], summary["failed"]) == (3, 3, 0)
    assert out.stderr == ""  # JSON mode: the summary names them, stderr stays for errors
    again = human(db, "batch", str(f))  # a re-run replays, and still names them once
    assert again.returncode == 0, again.stderr
    assert again.stderr == (
        "warning: ignored column(s) that batch does not use: Order_Ref, Currency, notes\n"
    )
    assert "Batch summary: 3 rows · 0 sold · 3 replayed" in again.stdout
    assert count(db, "SELECT count(*) FROM orders") == 3


def test_json_lines_keys_match_like_columns_and_extra_keys_are_ignored(shop, tmp_path):
    db, ids = shop
    f = tmp_path / "export.jsonl"
    rows = [
        {"Idempotency_Key": "j1", "ticket_type_id": ids["ga"], "QUANTITY": 1, "pay": "cash",
         "order_ref": "A-1", "currency": "EUR"},
        {"idempotency_key": "j2", "ticket_type_id": ids["ga"], "quantity": 1, "pay": "cash",
         "notes": None},
    ]  # fmt: skip
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = proc(db, "batch", str(f))
    assert out.code == 0, out.stdout
    assert summary_of(out.stdout)["ignored_columns"] == ["order_ref", "currency", "notes"]
    assert summary_of(out.stdout)["ok"] == 2
    shown = human(db, "batch", str(f))
    assert shown.stderr.count("warning: ignored field(s)") == 1
    assert "order_ref, currency, notes" in shown.stderr


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), ("\t", "tab")])
def test_semicolon_and_tab_files_are_read(shop, tmp_path, delimiter, name):
    db, ids = shop
    f = tmp_path / f"{name}.csv"
    f.write_text(shop_export(ids, delimiter), encoding="utf-8")
    out = proc(db, "batch", str(f))
    assert out.code == 0, out.stderr or out.stdout
    summary = summary_of(out.stdout)
    assert (summary["rows"], summary["ok"]) == (3, 3)
    assert summary["ignored_columns"] == ["Order_Ref", "Currency", "notes"]
    assert count(db, "SELECT count(*) FROM orders WHERE status = 'PAID'") == 3


def test_delimiter_option_forces_the_delimiter(shop, tmp_path):
    db, ids = shop
    f = tmp_path / "pipe.csv"
    f.write_text(f"idempotency_key|ticket_type_id|quantity|pay\np1|{ids['ga']}|1|cash\n")
    guessed = proc(db, "batch", str(f))
    assert guessed.code == 2 and guessed.error["code"] == "INVALID_INPUT"
    forced = proc(db, "batch", "--delimiter", "|", str(f))
    assert forced.code == 0, forced.stderr
    assert summary_of(forced.stdout)["ok"] == 1
    tabs = tmp_path / "tabs.csv"
    tabs.write_text(f"idempotency_key\tticket_type_id\tquantity\tpay\nt1\t{ids['ga']}\t1\tcash\n")
    assert proc(db, "batch", "--delimiter", "tab", str(tabs)).code == 0
    wrong = proc(db, "batch", "--delimiter", "x", str(tabs))
    assert wrong.code == 2 and "--delimiter" in wrong.error["message"]


def test_a_missing_column_is_named_with_the_delimiter_and_the_columns_found(shop, tmp_path):
    db, ids = shop
    f = tmp_path / "nopay.csv"
    f.write_text(f"idempotency_key;ticket_type_id;quantity;notes\nn1;{ids['ga']};1;x\n")
    out = proc(db, "batch", str(f))
    assert out.code == 2 and out.stdout == ""
    message = out.error["message"]
    assert out.error["code"] == "INVALID_INPUT"
    assert "missing column(s) pay;" in message
    assert "delimiter ';' (guessed from the header)" in message
    assert "found column(s): 'idempotency_key', 'ticket_type_id', 'quantity', 'notes'" in message
    twice = tmp_path / "twice.csv"
    twice.write_text("idempotency_key,Pay,ticket_type_id,quantity,PAY\n")
    out = proc(db, "batch", str(twice))
    assert out.code == 2 and "given twice: pay" in out.error["message"]
    assert count(db, "SELECT count(*) FROM orders") == 0


def mixed_file(tmp_path, ga: int, vip: int):
    """ok, declined, unknown, sold out (the unknown row keeps its seat held), invalid, ok,
    and a ticket type that does not exist (NOT_FOUND: an `other` failure)."""
    f = tmp_path / "mixed.csv"
    f.write_text(
        "idempotency_key,ticket_type_id,quantity,email,name,pay,card\n"
        f"m1,{ga},1,,Ann,card,{OK_CARD}\n"
        f"m2,{ga},1,,Bob,card,{DECLINED_CARD}\n"
        f"m3,{ga},1,,Cy,card,{TIMEOUT_CARD}\n"
        f"m4,{ga},2,,Di,cash,\n"
        f"m5,{ga},x,,Ed,cash,\n"
        f"m6,{vip},1,,Flo,cash,\n"
        "m7,999,1,,Gus,cash,\n"
    )
    return f


def test_declined_unknown_and_sold_out_are_counted_apart(make_db, tmp_path):
    db = make_db("mixed")
    ids = seed(db, capacity=3)
    f = mixed_file(tmp_path, ids["ga"], ids["vip"])
    out = proc(db, "batch", str(f))
    assert out.code == 8, out.stderr
    codes = [(json.loads(x).get("error") or {}).get("code") for x in out.stdout.splitlines()[:-1]]
    assert codes == [
        None,
        "PAYMENT_DECLINED",
        "PAYMENT_UNKNOWN",
        "SOLD_OUT",
        "INVALID_INPUT",
        None,
        "NOT_FOUND",
    ]
    summary = summary_of(out.stdout)
    assert {k: summary[k] for k in ("rows", "ok", "failed", "replayed")} == {
        "rows": 7,
        "ok": 2,
        "failed": 5,
        "replayed": 0,
    }
    assert {k: summary[k] for k in ("declined", "unknown", "sold_out", "invalid", "other")} == {
        "declined": 1,
        "unknown": 1,
        "sold_out": 1,
        "invalid": 1,
        "other": 1,
    }
    db2 = make_db("mixed-human")
    seed(db2, capacity=3)
    shown = human(db2, "batch", str(f))
    assert shown.returncode == 8, shown.stderr
    assert shown.stdout.splitlines()[-1] == (
        "Batch summary: 7 rows · 2 sold · 1 declined · 1 payment unknown (run reconcile)"
        " · 1 sold out · 1 invalid · 1 other failure (NOT_FOUND 1)"
    )
    table = shown.stdout.splitlines()[:-1]
    order = [line.split("│")[1].strip() for line in table if line.startswith("│")]
    assert order == ["2", "3", "4", "5", "7", "1", "6"]  # failures first, then sold, in file order
    for label in ("declined", "unknown", "sold out", "invalid", "sold"):
        assert any(f" {label} " in line for line in table), label


def test_show_all_lists_every_row_and_the_default_says_how(shop, tmp_path):
    db, ids = shop
    f = tmp_path / "many.csv"
    f.write_text(
        "idempotency_key,ticket_type_id,quantity,pay\n"
        + "".join(f"s{i},{ids['ga']},{'0' if i in (7, 19) else '1'},cash\n" for i in range(1, 26))
    )
    default = human(db, "batch", str(f))
    assert default.returncode == 8, default.stderr
    numbers = [ln.split("│")[1].strip() for ln in default.stdout.splitlines() if ln[:1] == "│"]
    assert numbers[:2] == ["7", "19"] and len(numbers) == 20  # failures first
    assert "5 more not shown — use --show all" in default.stdout
    every = human(db, "batch", "--show", "all", str(f))
    numbers = [ln.split("│")[1].strip() for ln in every.stdout.splitlines() if ln[:1] == "│"]
    assert sorted(numbers, key=int) == [str(i) for i in range(1, 26)]
    assert "more not shown" not in every.stdout
    failed = human(db, "batch", "--show", "failed", str(f))
    numbers = [ln.split("│")[1].strip() for ln in failed.stdout.splitlines() if ln[:1] == "│"]
    assert numbers == ["7", "19"] and "Failed rows" in failed.stdout
    none = human(db, "batch", "--show", "none", str(f))
    assert none.stdout == "Batch summary: 25 rows · 0 sold · 23 replayed · 2 invalid\n"


def test_the_table_fits_80_columns_and_cuts_names_with_an_ellipsis(shop, tmp_path):
    db, ids = shop
    name = "Maximiliane Wilhelmina von Hohenzollern-Sigmaringen"
    email = "maximiliane.wilhelmina@hohenzollern-sigmaringen.example.org"
    f = tmp_path / "long.csv"
    f.write_text(
        "idempotency_key,ticket_type_id,quantity,email,name,pay,card\n"
        f"shop-order-2026-11-24-000123,{ids['ga']},1,{email},{name},cash,\n"
        f"shop-order-2026-11-24-000124,{ids['ga']},1,{email},,card,{DECLINED_CARD}\n"
    )
    out = human(db, "batch", str(f), columns=80)
    assert out.returncode == 8, out.stderr
    lines = out.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), out.stdout
    cells = [line.split("│")[1:-1] for line in lines if line.startswith("│")]
    first = [c for c in cells if c[0].strip()]  # the first line of each table row
    assert [c[0].strip() for c in first] == ["2", "1"]
    assert [c[1].strip() for c in first] == ["shop-order-20…"] * 2
    assert first[0][3].strip().startswith("maximilian") and first[0][3].strip().endswith("…")
    assert first[1][3].strip().startswith("Maximiliane") and first[1][3].strip().endswith("…")
    assert name not in out.stdout and email not in out.stdout  # cut, never wrapped
    assert all(not c[1].strip() and not c[3].strip() for c in cells if not c[0].strip())


def test_ignored_names_are_bounded_and_shown_inert(shop, tmp_path):
    """A hostile file with a new key on every row: the rows run, the summary names the
    first 50 keys only, and a key holding terminal controls is written as escapes."""
    db, ids = shop
    f = tmp_path / "keys.jsonl"
    good = {"idempotency_key": "", "ticket_type_id": ids["ga"], "quantity": 1, "pay": "cash"}
    f.write_text(
        "\n".join(
            json.dumps({**good, "idempotency_key": f"h{i}", f"x{i}\u001b[2J": i, f"y{i}": i})
            for i in range(30)
        )
        + "\n"
    )
    out = proc(db, "batch", str(f))
    assert out.code == 0, out.stdout[-500:]
    summary = summary_of(out.stdout)
    assert summary["ok"] == 30 and len(summary["ignored_columns"]) == 50
    assert summary["ignored_columns"][:3] == ["x0\u001b[2J", "y0", "x1\u001b[2J"]
    shown = human(db, "batch", "--show", "none", str(f))
    assert "\x1b" not in shown.stderr and "x0\\x1b[2J, y0, x1\\x1b[2J" in shown.stderr


def _peak_rss_kb(args: list[str], out_path: str, columns: int = 80) -> tuple[int, int]:
    """Run a real process with stdout to a file; its exit code and its own peak RSS (KiB)."""
    with open(out_path, "w") as out:
        child = subprocess.Popen(
            args, stdout=out, stderr=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"},
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss


def test_show_all_on_a_large_file_lists_every_row_in_bounded_memory(tmp_path):
    """`--show all` over 12,000 rows: every row listed once, in tables of one width that
    fit 80 columns, and the drawing does not hold the whole table at once (Rich kept about
    7 KB per row while drawing it: 1.4 GB for 200,000 rows). SQLite only: every row is
    refused before any write, so this measures the drawing, not the storage."""
    db = str(tmp_path / "large.db")
    ids = seed(db, capacity=50, max_per_order=10)
    f = tmp_path / "large.csv"
    n = 12_000
    f.write_text(
        "idempotency_key,ticket_type_id,quantity,pay,name\n"
        + "".join(f"big-{i},{ids['ga']},0,cash,{'N' * 60}\n" for i in range(1, n + 1))
    )  # quantity 0: every row is refused before any write, so the run is quick
    exe = [tickethub_exe(), "--db", db, "batch", str(f), "--show"]
    code, quiet = _peak_rss_kb([*exe, "none"], str(tmp_path / "none.txt"))
    assert code == 8
    code, listed = _peak_rss_kb([*exe, "all"], str(tmp_path / "all.txt"))
    assert code == 8
    lines = (tmp_path / "all.txt").read_text().splitlines()
    assert lines[-1] == f"Batch summary: {n:,} rows · 0 sold · {n:,} invalid"
    numbers = [ln.split("│")[1].strip() for ln in lines if ln[:1] == "│"]
    assert [x for x in numbers if x] == [str(i) for i in range(1, n + 1)]
    assert {len(ln) for ln in lines[1:-1]} == {80}, {len(ln) for ln in lines[1:-1]}
    assert listed - quiet < 40_000, (listed, quiet)  # KiB drawn beyond the counting alone

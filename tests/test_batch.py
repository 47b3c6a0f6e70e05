"""`batch`: both formats and stdin, per-row errors, exit codes, re-run safety, kill -9 re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import (
    OK_CARD,
    cli,
    count,
    dump,
    healthy,
    proc,
    reusable_db,
    seed,
    tickethub_exe,
    type_counts,
)

HEADER = "idempotency_key,ticket_type_id,quantity,email,name,pay,card\n"


@pytest.fixture
def shop(make_db):
    path = make_db("batch")
    ids = seed(path, capacity=500, max_per_order=10)
    return path, ids


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_csv_rows_in_order_with_per_row_errors(shop, tmp_path):
    db, ids = shop
    f = tmp_path / "sales.csv"
    f.write_text(
        HEADER
        + f"r1,{ids['ga']},2,a@b.org,Ann,card,{OK_CARD}\n"
        + f"r2,{ids['ga']},abc,,,cash,\n"
        + f",{ids['ga']},1,,,cash,\n"
        + f"r4,{ids['ga']},1,,,cash,\n"
        + "r5,9999,1,,,cash,\n"
        + f"r6,{ids['ga']},1,,,bitcoin,\n"
    )
    out = cli(db, "batch", str(f))
    assert out.code == 8
    rows = lines(out.stdout)
    assert [r["row"] for r in rows[:-1]] == [1, 2, 3, 4, 5, 6]
    assert [r["ok"] for r in rows[:-1]] == [True, False, False, True, False, False]
    assert rows[0]["order"]["status"] == "PAID" and len(rows[0]["order"]["tickets"]) == 2
    assert rows[1]["error"]["code"] == "INVALID_INPUT" and "abc" in rows[1]["error"]["message"]
    assert rows[2]["idempotency_key"] is None and "idempotency_key" in rows[2]["error"]["message"]
    assert rows[4]["error"]["code"] == "NOT_FOUND"
    assert rows[5]["error"]["code"] == "INVALID_INPUT"
    assert rows[-1] == {
        "summary": {
            "rows": 6,
            "ok": 2,
            "failed": 4,
            "replayed": 0,
            "declined": 0,
            "unknown": 0,
            "sold_out": 0,
            "invalid": 3,
            "other": 1,
            "errors": {"INVALID_INPUT": 3, "NOT_FOUND": 1},
            "ignored_columns": [],
        }
    }
    assert type_counts(db, ids["ga"]) == (3, 0)


def test_jsonl_from_stdin_with_items_and_all_ok_exits_0(shop):
    db, ids = shop
    data = "\n".join(
        [
            json.dumps(
                {
                    "idempotency_key": "j1",
                    "pay": "cash",
                    "items": [
                        {"ticket_type_id": ids["ga"], "quantity": 1},
                        {"ticket_type_id": ids["vip"], "quantity": 2},
                    ],
                }
            ),
            "",
            json.dumps(
                {
                    "idempotency_key": "j2",
                    "ticket_type_id": ids["ga"],
                    "quantity": 3,
                    "pay": "card",
                    "card": OK_CARD,
                    "email": "x@y.org",
                }
            ),
        ]
    )
    out = cli(db, "batch", "-", input=data)
    assert out.code == 0, out.stdout
    rows = lines(out.stdout)
    assert [r["row"] for r in rows[:-1]] == [1, 2]
    assert len(rows[0]["order"]["lines"]) == 2
    assert rows[-1]["summary"]["ok"] == 2


def test_rerun_replays_and_sells_nothing_twice(shop, tmp_path):
    db, ids = shop
    f = tmp_path / "again.csv"
    f.write_text(HEADER + "".join(f"k{i},{ids['ga']},1,,,cash,\n" for i in range(20)))
    first = cli(db, "batch", str(f))
    assert first.code == 0
    before = type_counts(db, ids["ga"])
    second = cli(db, "batch", str(f))
    assert second.code == 0
    summary = lines(second.stdout)[-1]["summary"]
    assert summary == {
        "rows": 20,
        "ok": 20,
        "failed": 0,
        "replayed": 20,
        "declined": 0,
        "unknown": 0,
        "sold_out": 0,
        "invalid": 0,
        "other": 0,
        "errors": {},
        "ignored_columns": [],
    }
    assert type_counts(db, ids["ga"]) == before == (20, 0)
    assert count(db, "SELECT count(*) FROM orders") == 20


def test_stop_on_error(shop, tmp_path):
    db, ids = shop
    f = tmp_path / "stop.csv"
    f.write_text(HEADER + f"a,{ids['ga']},0,,,cash,\nb,{ids['ga']},1,,,cash,\n")
    out = cli(db, "batch", "--stop-on-error", str(f))
    assert out.code == 8
    rows = lines(out.stdout)
    assert len(rows) == 2 and rows[-1]["summary"]["rows"] == 1
    assert count(db, "SELECT count(*) FROM orders") == 0


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", 2),
        (b"\n\n  \n", 2),
        (b"\x00\x01\x02binary\xff\xfe", 2),
        (b"\xff\xfe\xfa not utf8\n", 2),
        (b"idempotency_key,ticket_type_id,quantity,email\nx,1,1,a@b.org\n", 2),
        (b"idempotency_key;ticket_type_id;quantity;colour\nx;1;1;red\n", 2),
    ],
)
def test_bad_files_are_refused_up_front(shop, tmp_path, content, code):
    db, _ = shop
    f = tmp_path / "bad.csv"
    f.write_bytes(content)
    before = dump(db)
    out = cli(db, "batch", str(f))
    assert out.code == code, out.stderr
    assert out.stdout == "" and out.error["code"] == "INVALID_INPUT"
    assert "Traceback" not in out.stderr
    assert dump(db) == before


def test_missing_file_is_not_found(shop):
    db, _ = shop
    out = cli(db, "batch", "/nonexistent/sales.csv")
    assert out.code == 3 and out.error["code"] == "NOT_FOUND"


def test_non_object_json_line_and_short_csv_row_fail_alone(shop, tmp_path):
    db, ids = shop
    good = json.dumps(
        {"idempotency_key": "ok", "ticket_type_id": ids["ga"], "quantity": 1, "pay": "cash"}
    )
    out = cli(db, "batch", "-", input=f'{good}\n[1, 2]\n"text"\n{{"broken": \n')
    rows = lines(out.stdout)
    assert out.code == 8
    assert [r["ok"] for r in rows[:-1]] == [True, False, False, False]
    assert "object" in rows[1]["error"]["message"]
    assert "JSON" in rows[3]["error"]["message"]
    f = tmp_path / "short.csv"
    f.write_text(HEADER + f"s1,{ids['ga']}\n" + f"s2,{ids['ga']},1,,,cash,\n")
    rows = lines(cli(db, "batch", str(f)).stdout)
    assert [r["ok"] for r in rows[:-1]] == [False, True]


def test_human_mode_prints_summary_table(shop, tmp_path):
    db, ids = shop
    from typer.testing import CliRunner

    from tickethub_cli.cli import app

    f = tmp_path / "h.csv"
    f.write_text(HEADER + f"h1,{ids['ga']},1,,,cash,\nh2,{ids['ga']},x,,,cash,\n")
    result = CliRunner().invoke(app, ["--db", db, "batch", str(f)])
    assert result.exit_code == 8
    assert "Batch summary" in result.stdout and "Rows (failures first)" in result.stdout


def test_kill_9_half_way_then_rerun_completes_without_duplicates(shop, tmp_path):
    db, ids = shop
    rows = 150
    f = tmp_path / "big.csv"
    f.write_text(
        HEADER
        + "".join(
            f"big-{i},{ids['ga']},1,,,{'card' if i % 2 else 'cash'},{OK_CARD if i % 2 else ''}\n"
            for i in range(rows)
        )
    )
    p = subprocess.Popen(
        [tickethub_exe(), "--db", db, "--json", "batch", str(f)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert p.stdout is not None
    for done, _ in enumerate(p.stdout, start=1):  # wait for real progress, then kill
        if done == 40:
            break
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert count(db, "SELECT count(*) FROM orders") < rows
    again = proc(db, "batch", str(f))
    assert again.code == 0, again.stderr[-500:]
    summary = lines(again.stdout)[-1]["summary"]
    assert summary["rows"] == rows and summary["ok"] == rows
    assert summary["replayed"] >= 40
    assert count(db, "SELECT count(*) FROM orders") == rows
    assert count(db, "SELECT count(DISTINCT idempotency_key) FROM orders") == rows
    assert count(db, "SELECT count(*) FROM mockpay_charges") == rows // 2
    assert type_counts(db, ids["ga"]) == (rows, 0)
    healthy(db)


def test_a_file_name_with_a_nul_byte_is_bad_input(shop):
    """Regression (fuzzer): open() raises ValueError for it, which became INTERNAL."""
    db, _ = shop
    out = cli(db, "batch", "sales\x00.csv")
    assert out.code == 2 and out.error["code"] == "INVALID_INPUT"


# --------------------------------------------- group commit gives the row-by-row outcome

CARDS = {"ok": OK_CARD, "declined": "4000000000000002", "timeout": "4000000000000119"}
ROW = st.tuples(
    st.sampled_from(["ga", "vip"]),
    st.integers(1, 3),
    st.sampled_from(["ok", "ok", "declined", "timeout", "cash"]),
    st.integers(0, 12),  # key number: a repeat replays (or mismatches) within the file
)


def _run_file(path: str, ids: dict, rows: list, group: int) -> list:
    import io

    import tickethub_cli as th
    from tickethub_cli import batch

    text = "idempotency_key,ticket_type_id,quantity,email,name,pay,card\n" + "".join(
        f"k{key},{ids[t]},{q},,,{'cash' if pay == 'cash' else 'card'},{CARDS.get(pay, '')}\n"
        for t, q, pay, key in rows
    )
    s = th.open_session(path, operator="prop")
    try:
        results = list(batch.run(s, io.BytesIO(text.encode()), group_size=group))
        statuses = dict(s.conn.execute("SELECT id, status FROM orders").fetchall())
    finally:
        s.close()
    return [
        (
            r.row,
            r.ok,
            (r.error or {}).get("code"),
            statuses.get((r.order or {}).get("id") or (r.error or {}).get("order_id")),
        )
        for r in results
    ]


def test_grouped_batch_equals_row_by_row(make_db, backend):
    """Whatever the file, sharing commits changes no row's outcome: a declined or unknown
    row never keeps a later row from the seats a row-by-row run would give it."""
    grouped_db = reusable_db(make_db, backend, "grouped")
    single_db = reusable_db(make_db, backend, "single")

    @settings(
        max_examples=25 if backend == "sqlite" else 12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(rows=st.lists(ROW, min_size=1, max_size=40))
    def check(rows):
        outcomes, counters = [], []
        for fresh, group in ((grouped_db, 50), (single_db, 1)):
            path = fresh()
            ids = seed(path, capacity=8, max_per_order=3)
            outcomes.append(_run_file(path, ids, rows, group))
            counters.append([type_counts(path, ids[t]) for t in ("ga", "vip")])
            healthy(path)
        assert outcomes[0] == outcomes[1]
        assert counters[0] == counters[1]

    check()

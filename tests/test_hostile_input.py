"""Hostile input (issue 10, input side): whatever arrives on argv, in the environment, in a
batch file, on the scanner or in a callback is refused with a clear code or fails its own row;
never exit 1, never a silent loss. Each test here failed on the build before this work."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from support import OK_CARD, buy, cli, count, dump, proc, seed, tickethub_exe

import tickethub_cli as th
from tickethub_cli import batch, clock
from tickethub_cli.store.url import is_postgres

HEADER = "idempotency_key,ticket_type_id,quantity,email,name,pay,card\n"
SECRET = "whsec"


@pytest.fixture
def shop(make_db):
    path = make_db("shop")
    return path, seed(path, capacity=500, max_per_order=10)


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def run_bytes(db: str, *args: bytes | str, env: dict[bytes, bytes] | None = None):
    """A real process with raw bytes in argv and environment (Python would turn the bytes
    that are not UTF-8 into lone surrogates, as it does for a user's shell)."""
    full = dict(os.environb)
    full.pop(b"TICKETHUB_OPERATOR", None)
    full.update(env or {})
    return subprocess.run(
        [tickethub_exe(), "--db", db, "--json", *args], capture_output=True, env=full, timeout=60
    )


def human(db: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    """A real process in human mode (no --json)."""
    return subprocess.run(
        [tickethub_exe(), "--db", db, *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def assert_refused(done: subprocess.CompletedProcess, code: str, exit_code: int = 2) -> dict:
    err = json.loads(done.stderr)["error"]
    assert done.returncode == exit_code, done.stderr
    assert err["code"] == code, err
    assert b"Traceback" not in done.stderr if isinstance(done.stderr, bytes) else True
    return err


# --- 1. exit 1 from input ----------------------------------------------------------------


def test_non_ascii_signature_is_a_bad_signature_not_a_crash(shop, tmp_path):
    db, _ids = shop
    payload = tmp_path / "cb.json"
    payload.write_bytes(b'{"id": "cb1", "order_id": 1, "status": "succeeded", "amount_minor": 1}')
    out = cli(
        db,
        "payment",
        "callback",
        "--payload",
        str(payload),
        "--signature",
        "é",
        env={"TICKETHUB_WEBHOOK_SECRET": SECRET},
    )
    assert out.code == 2 and out.error["code"] == "SIGNATURE_INVALID", out.stderr


@pytest.mark.parametrize(
    ("args", "env"),
    [
        ([b"--email", b"ann\xff@example.org"], {}),
        ([b"-k", b"key-\xff"], {}),
        ([], {b"LOGNAME": b"gate\xffkeeper"}),
        ([], {b"TICKETHUB_OPERATOR": b"gate\xffkeeper"}),
    ],
    ids=["email", "key", "LOGNAME", "TICKETHUB_OPERATOR"],
)
def test_non_utf8_argv_and_environment_are_invalid_input(shop, args, env):
    db, ids = shop
    before = dump(db)
    done = run_bytes(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "cash", *args, env=env)
    assert_refused(done, "INVALID_INPUT")
    assert dump(db) == before


def test_csv_field_longer_than_the_csv_module_limit_fails_its_row_only(shop, tmp_path):
    db, ids = shop
    f = tmp_path / "long.csv"
    f.write_text(
        HEADER
        + f"r1,{ids['ga']},1,,,cash,\n"
        + f"r2,{ids['ga']},1,,{'x' * 140_000},cash,\n"
        + f"r3,{ids['ga']},1,,,cash,\n"
    )
    out = cli(db, "batch", str(f))
    rows = lines(out.stdout)
    assert out.code == 8, out.stderr
    assert [r["ok"] for r in rows[:-1]] == [True, False, True]
    assert rows[1]["error"]["code"] == "INVALID_INPUT"
    assert rows[-1]["summary"]["rows"] == 3


def _jsonl_row(key: str, ids: dict[str, int]) -> str:
    return json.dumps(
        {"idempotency_key": key, "ticket_type_id": ids["ga"], "quantity": 1, "pay": "cash"}
    )


@pytest.mark.parametrize(
    "bad",
    [
        '{"idempotency_key": "\\ud800", "ticket_type_id": 1, "quantity": 1, "pay": "cash"}',
        '{"\\udfff": 1, "idempotency_key": "s1", "ticket_type_id": 1, "quantity": 1,'
        ' "pay": "cash"}',
        '{"idempotency_key": "big", "ticket_type_id": 1, "quantity": '
        + "9" * 5000
        + ', "pay": "cash"}',
        '{"idempotency_key": "deep", "items": ' + "[" * 40_000 + "]" * 40_000 + "}",
    ],
    ids=["surrogate-key-value", "surrogate-field-name", "huge-integer", "deep"],
)
def test_a_hostile_json_lines_row_fails_alone_in_its_50_row_group(shop, tmp_path, bad):
    db, ids = shop
    good = [_jsonl_row(f"g{i}", ids) for i in range(60)]
    f = tmp_path / "rows.jsonl"
    f.write_text("\n".join([*good[:2], bad, *good[2:]]) + "\n")
    out = cli(db, "batch", str(f))
    rows = lines(out.stdout)
    assert out.code == 8, out.stderr
    assert [r["row"] for r in rows[:-1]] == list(range(1, 62))
    assert [r["row"] for r in rows[:-1] if not r["ok"]] == [3]
    assert rows[2]["error"]["code"] == "INVALID_INPUT"
    assert rows[-1]["summary"] == {
        "rows": 61,
        "ok": 60,
        "failed": 1,
        "replayed": 0,
        "declined": 0,
        "unknown": 0,
        "sold_out": 0,
        "invalid": 1,
        "other": 0,
        "errors": {"INVALID_INPUT": 1},
        "ignored_columns": [],
    }
    assert count(db, "SELECT count(*) FROM orders") == 60


def _signed(payload: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "payload",
    [
        b'{"id": "d", "order_id": 1, "status": "succeeded", "amount_minor": '
        + b"[" * 40_000
        + b"]" * 40_000
        + b"}",
        b'{"id": "n", "order_id": 1, "status": "succeeded", "amount_minor": ' + b"7" * 5000 + b"}",
        b'{"id": "\\ud800", "order_id": 1, "status": "succeeded", "amount_minor": 2000}',
    ],
    ids=["deep", "huge-integer", "lone-surrogate"],
)
def test_signed_hostile_callback_payloads_are_invalid_input(shop, tmp_path, payload):
    db, ids = shop
    s = th.open_session(db, operator="t")
    order = buy(s, [f"{ids['ga']}:1"]).order
    s.close()
    assert order["total_minor"] == 2000
    f = tmp_path / "cb.json"
    f.write_bytes(payload)
    before = dump(db)
    out = proc(
        db,
        "payment",
        "callback",
        "--payload",
        str(f),
        "--signature",
        _signed(payload),
        env={"TICKETHUB_WEBHOOK_SECRET": SECRET},
    )
    assert out.code == 2 and out.error["code"] == "INVALID_INPUT", out.stderr
    assert dump(db) == before


@pytest.mark.parametrize("offset", ["inf", "-inf", "nan", "1e30", "1e12", "-1e12", "soon"])
def test_a_bad_clock_offset_is_refused_before_anything_is_written(shop, offset):
    db, ids = shop
    before = dump(db)
    out = proc(
        db,
        "purchase",
        "-i",
        f"{ids['ga']}:1",
        "--pay",
        "cash",
        env={"TICKETHUB_CLOCK_OFFSET": offset},
    )
    assert out.code == 2 and out.error["code"] == "INVALID_INPUT", out.stderr
    assert "TICKETHUB_CLOCK_OFFSET" in out.error["message"]
    assert dump(db) == before


def test_a_clock_offset_within_ten_years_still_works(shop):
    db, ids = shop
    out = proc(
        db,
        "purchase",
        "-i",
        f"{ids['ga']}:1",
        "--pay",
        "cash",
        env={"TICKETHUB_CLOCK_OFFSET": "86400"},
    )
    assert out.code == 0, out.stderr
    with pytest.raises(th.TicketHubError):
        clock.set_offset(1e12)
    clock.set_offset(0)


# --- 2. silent data loss -------------------------------------------------------------------


def test_one_unbalanced_quote_fails_its_row_and_the_other_49_rows_run(shop, tmp_path):
    db, ids = shop
    rows = [f"q{i},{ids['ga']},1,,Ann,cash,\n" for i in range(1, 51)]
    rows[1] = f'q2,{ids["ga"]},1,,"Ann,cash,\n'
    f = tmp_path / "quote.csv"
    f.write_text(HEADER + "".join(rows))
    out = cli(db, "batch", str(f))
    result = lines(out.stdout)
    assert out.code == 8, out.stderr
    assert result[-1]["summary"]["rows"] == 50
    assert result[-1]["summary"]["ok"] == 49
    assert [r["row"] for r in result[:-1] if not r["ok"]] == [2]
    assert "quote" in result[1]["error"]["message"]
    assert count(db, "SELECT count(*) FROM orders") == 49


def test_a_line_that_is_not_utf8_fails_its_row_and_the_batch_goes_on(shop, tmp_path):
    db, ids = shop
    f = tmp_path / "latin1.csv"
    f.write_bytes(
        HEADER.encode()
        + f"u1,{ids['ga']},1,,,cash,\n".encode()
        + f"u2,{ids['ga']},1,,Ren\xe9e,cash,\n".encode("latin-1")
        + f"u3,{ids['ga']},1,,,cash,\n".encode()
    )
    out = cli(db, "batch", str(f))
    result = lines(out.stdout)
    assert out.code == 8, out.stderr
    assert [r["ok"] for r in result[:-1]] == [True, False, True]
    assert result[-1]["summary"]["rows"] == 3


def test_a_callback_payload_over_1_mib_on_stdin_is_refused_not_cut(shop):
    db, _ids = shop
    body = b'{"id": "big", "order_id": 1, "status": "succeeded", "amount_minor": 2000}'
    payload = body + b" " * (1_100_000 - len(body))
    before = dump(db)
    done = subprocess.run(
        [
            tickethub_exe(),
            "--db",
            db,
            "--json",
            "payment",
            "callback",
            "--payload",
            "-",
            "--signature",
            _signed(payload),
        ],
        input=payload,
        capture_output=True,
        env={**os.environ, "TICKETHUB_WEBHOOK_SECRET": SECRET},
        timeout=60,
    )
    err = assert_refused(done, "INVALID_INPUT")
    assert "1 MiB" in err["message"]
    assert dump(db) == before  # not even a signature_invalid record


# --- 3. the gate survives a busy database ---------------------------------------------------

LOCKER = """
import sys
target = sys.argv[1]
if target.startswith("postgresql://"):  # the database's one write lock (see store/postgres.py)
    import psycopg
    from tickethub_cli.store.postgres import WRITE_LOCK
    conn = psycopg.connect(target)
    conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
else:
    import sqlite3
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()  # hold the write lock until the test says so
conn.rollback()
print("released", flush=True)
"""


def _hold_the_write_lock(target: str) -> Callable[[], None]:
    """Another writer takes the database's write lock, in this process; returns its release."""
    if is_postgres(target):
        import psycopg

        from tickethub_cli.store.postgres import WRITE_LOCK

        pg = psycopg.connect(target)
        pg.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        return pg.close  # closing ends the transaction and its lock
    holder = sqlite3.connect(target, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    def release() -> None:
        holder.execute("ROLLBACK")
        holder.close()

    return release


def test_gate_answers_a_busy_scan_with_an_error_line_and_goes_on(make_db):
    db = make_db("gate")
    ids = seed(db, capacity=50)
    s = th.open_session(db, operator="t")
    tickets = buy(s, [f"{ids['ga']}:2"]).order["tickets"]
    s.close()
    gate = subprocess.Popen(
        [tickethub_exe(), "--db", db, "--json", "gate", "--event", str(ids["event"])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        env={**os.environ, "TICKETHUB_BUSY_TIMEOUT": "0.3"},
    )
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, db],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert gate.stdin and gate.stdout and locker.stdin and locker.stdout
    try:
        assert locker.stdout.readline().strip() == "locked"
        gate.stdin.write(tickets[0]["code"] + "\n")
        gate.stdin.flush()
        busy = json.loads(gate.stdout.readline())
        assert busy["error"]["code"] == "DB_BUSY", busy
        assert busy["code"] == tickets[0]["code"] and busy["result"] != "ADMITTED"
        locker.stdin.write("go\n")
        locker.stdin.flush()
        assert locker.stdout.readline().strip() == "released"
        for code in (tickets[0]["code"], tickets[1]["code"]):
            gate.stdin.write(code + "\n")
            gate.stdin.flush()
            answer = json.loads(gate.stdout.readline())
            assert answer["result"] == "ADMITTED" and "error" not in answer, answer
        gate.stdin.close()
        summary = json.loads(gate.stdout.readline())["summary"]
        assert summary["scanned"] == 3 and summary["admitted"] == 2 and summary["errors"] == 1
        assert gate.wait(timeout=30) == 0
    finally:
        for p in (gate, locker):
            if p.poll() is None:
                p.kill()
            p.wait()


def test_gate_library_answers_busy_scans_with_errors_and_writes_nothing(make_db):
    from tickethub_cli.checkin import Gate

    db = make_db("gate")
    ids = seed(db)
    os.environ["TICKETHUB_BUSY_TIMEOUT"] = "0.05"  # read when the session opens
    try:
        s = th.open_session(db, operator="t")
    finally:
        os.environ.pop("TICKETHUB_BUSY_TIMEOUT")
    release = _hold_the_write_lock(db)
    try:
        results = Gate(s, ids["event"]).answer_many(["AAAA", "BBBB"])
    finally:
        release()
    assert [r.error["code"] for r in results] == ["DB_BUSY", "DB_BUSY"]
    assert count(db, "SELECT count(*) FROM scans") == 0
    s.close()


# --- 4. smaller ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    ["K1 ", " K1", "K1\t", unicodedata.normalize("NFD", "Kéy"), "Kéy"],
    ids=["trailing-space", "leading-space", "tab", "nfd", "nfc"],
)
def test_keys_differing_only_in_spaces_or_normal_form_are_one_key(shop, variant):
    db, ids = shop
    first_key = "Kéy" if "y" in variant else "K1"
    first = cli(
        db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD, "-k", first_key
    )
    again = cli(
        db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD, "-k", variant
    )
    assert first.code == 0 and again.code == 0, again.stderr
    assert again.json["replayed"] is True
    assert again.json["order"]["id"] == first.json["order"]["id"]
    assert count(db, "SELECT count(*) FROM orders") == 1
    assert count(db, "SELECT count(*) FROM mockpay_charges") <= 1


@pytest.mark.parametrize("secret", [" ", "\t", "  \n"])
def test_a_blank_webhook_secret_is_refused_like_a_missing_one(shop, tmp_path, secret):
    db, _ = shop
    payload = b'{"id": "cb", "order_id": 1, "status": "succeeded", "amount_minor": 2000}'
    f = tmp_path / "cb.json"
    f.write_bytes(payload)
    before = dump(db)
    out = proc(
        db,
        "payment",
        "callback",
        "--payload",
        str(f),
        "--signature",
        _signed(payload, secret),
        env={"TICKETHUB_WEBHOOK_SECRET": secret},
    )
    assert out.code == 2 and out.error["code"] == "INVALID_INPUT", out.stderr
    assert "TICKETHUB_WEBHOOK_SECRET" in out.error["message"]
    assert dump(db) == before


def test_ctrl_c_in_a_human_batch_prints_the_summary_so_far_and_exits_130(shop):
    db, ids = shop
    p = subprocess.Popen(
        [tickethub_exe(), "--db", db, "batch", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdin is not None
    p.stdin.write(HEADER + f"c1,{ids['ga']},1,,,cash,\nc2,{ids['ga']},1,,,cash,\n")
    p.stdin.flush()
    deadline = time.monotonic() + 30
    while count(db, "SELECT count(*) FROM orders") < 2:  # wait for the two rows to commit
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "Batch summary" in out
    assert "Traceback" not in err


def test_the_human_failed_rows_list_is_bounded(shop, tmp_path):
    db, ids = shop
    f = tmp_path / "bad.csv"
    f.write_text(HEADER + "".join(f"b{i},{ids['ga']},0,,,cash,\n" for i in range(70)))
    done = human(db, "batch", str(f))
    assert done.returncode == 8, done.stderr
    assert "50 more not shown" in done.stdout
    summary = batch.Summary()
    for i in range(10_000):
        summary.add(batch.RowResult(i + 1, f"k{i}", False, error={"code": "INVALID_INPUT"}))
    assert len(summary.failures) == batch.SHOWN_FAILURES
    assert summary.failed == 10_000


def test_years_before_1000_are_stored_with_four_digits(shop):
    db, _ids = shop
    out = cli(db, "event", "create", "--name", "Ancient", "--starts-at", "0999-01-01T00:00:00Z")
    assert out.code == 0, out.stderr
    assert out.json["event"]["starts_at"] == "0999-01-01T00:00:00Z"
    assert clock.fmt(clock.parse("0042-03-04T05:06:07.5+00:00")) == "0042-03-04T05:06:07.500000Z"


@pytest.mark.parametrize(
    ("offset", "ok"), [("+23:59", False), ("-14:01", False), ("+14:00", True), ("-12:00", True)]
)
def test_only_real_utc_offsets_are_accepted(shop, offset, ok):
    db, _ids = shop
    out = cli(db, "event", "create", "--name", "Far", "--starts-at", f"2027-06-01T20:00:00{offset}")
    if ok:
        assert out.code == 0, out.stderr
    else:
        assert out.code == 2 and out.error["code"] == "INVALID_INPUT", out.stderr


@pytest.mark.parametrize("kind", ["fifo", "devnull"])
@pytest.mark.parametrize("command", [["event", "list"], ["init"]])
def test_a_database_path_that_is_not_a_regular_file(tmp_path, kind, command):
    if kind == "fifo":
        path = str(tmp_path / "pipe")
        os.mkfifo(path)
    else:
        path = os.devnull
    out = proc(path, *command, timeout=30)
    assert out.code == 7 and out.error["code"] == "DB_ERROR", out.stderr
    assert "not a regular file" in out.error["message"]
    if kind == "fifo":
        assert Path(path).is_fifo()

"""Database faults: a long-held write lock, a read-only file or folder, a full disk in the
middle of a batch, a damaged file. Each gives a clear error and its exit code; once the
fault is gone, reconcile and doctor show nothing lost."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
from support import (
    OK_CARD,
    count,
    dump,
    proc,
    raw_execute,
    seed,
    tickethub_exe,
    type_counts,
)

HOLDER = r"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))  # the fault under test: a writer that keeps the lock
conn.execute("ROLLBACK")
print("released", flush=True)
"""


def test_lock_held_10s_busy_within_budget_then_waits_and_succeeds(tmp_path):
    db = str(tmp_path / "lock.db")
    ids = seed(db)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, db, "10"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    before = dump(db)
    started = time.monotonic()
    patient = subprocess.Popen(
        [
            tickethub_exe(),
            "--db",
            db,
            "--json",
            "purchase",
            "-i",
            f"{ids['ga']}:1",
            "--pay",
            "cash",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TICKETHUB_BUSY_TIMEOUT": "30"},
    )
    hasty = proc(
        db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "cash", env={"TICKETHUB_BUSY_TIMEOUT": "1"}
    )
    assert hasty.code == 7 and hasty.error["code"] == "DB_BUSY"
    assert "Traceback" not in hasty.stderr and hasty.stdout == ""
    assert dump(db) == before  # the refused command changed nothing
    out, err = patient.communicate(timeout=60)
    waited = time.monotonic() - started
    assert patient.returncode == 0, err
    assert json.loads(out)["order"]["status"] == "PAID"
    assert waited >= 5  # it really waited for the lock instead of failing
    assert holder.wait(timeout=30) == 0
    assert type_counts(db, ids["ga"]) == (1, 0)
    assert proc(db, "doctor").code == 0


def _can_mount() -> bool:
    return (
        os.geteuid() == 0
        and subprocess.run(["mount", "--version"], capture_output=True).returncode == 0
    )


@pytest.fixture
def ro_dir(tmp_path):
    """A folder we can make read-only: a tmpfs remounted ro when root (root ignores file
    modes), plain chmod otherwise."""
    path = tmp_path / "ro"
    path.mkdir()
    mounted = False
    if os.geteuid() == 0:
        if (
            not _can_mount()
            or subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)], capture_output=True
            ).returncode
        ):
            pytest.skip("root without mount: cannot make a read-only folder here")
        mounted = True

    def make_readonly(readonly: bool) -> None:
        if mounted:
            opt = "remount,ro" if readonly else "remount,rw"
            subprocess.run(["mount", "-o", opt, str(path)], check=True)
        else:
            for p in [path, *path.iterdir()]:
                p.chmod(0o555 if readonly and p.is_dir() else 0o444 if readonly else 0o755)

    yield path, make_readonly
    if mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_read_only_database_is_a_clear_error_and_recovers(ro_dir):
    path, make_readonly = ro_dir
    db = str(path / "ro.db")
    ids = seed(db)
    assert proc(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "cash").code == 0
    make_readonly(True)
    try:
        out = proc(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "cash")
        assert out.code == 7, out.stderr
        assert out.error["code"] == "DB_ERROR" and "Traceback" not in out.stderr
        assert "read-only" in out.error["message"] or "cannot open" in out.error["message"]
    finally:
        make_readonly(False)
    assert proc(db, "reconcile", "--stale-after", "0").code == 0
    assert proc(db, "doctor").code == 0
    assert type_counts(db, ids["ga"]) == (1, 0)


def _limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a tiny tmpfs when we may mount one (a real ENOSPC), else None: the test
    then caps the file size with RLIMIT_FSIZE (EFBIG), as `ulimit -f` would."""
    path = tmp_path / "small"
    path.mkdir()
    if (
        _can_mount()
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    ):
        yield path, True
        subprocess.run(["umount", "-l", str(path)], check=False)
    else:
        yield path, False


def test_disk_full_in_the_middle_of_a_batch_then_rerun_loses_nothing(small_disk, tmp_path):
    folder, is_tmpfs = small_disk
    db = str(folder / "full.db")
    ids = seed(db, capacity=1000)
    assert proc(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "cash").code == 0
    rows = 400
    sales = tmp_path / "sales.csv"
    sales.write_text(
        "idempotency_key,ticket_type_id,quantity,email,name,pay,card\n"
        + "".join(f"f{i},{ids['ga']},1,,,card,{OK_CARD}\n" for i in range(rows))
    )
    wal = db + "-wal"
    limit = max(os.path.getsize(wal) if os.path.exists(wal) else 0, os.path.getsize(db))
    full = subprocess.run(
        [tickethub_exe(), "--db", db, "--json", "batch", str(sales)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=None if is_tmpfs else _limit_file_size(limit + 200_000),
    )
    assert full.returncode == 7, full.stderr[-800:]
    assert "Traceback" not in full.stderr
    error = json.loads(full.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "DB_ERROR"
    assert ("disk full" if is_tmpfs else "I/O error") in error["message"]
    lines = [json.loads(x) for x in full.stdout.splitlines()]
    assert "summary" in lines[-1] and 0 < lines[-1]["summary"]["ok"] < rows
    if is_tmpfs:  # the fault is removed: copy the database to a roomy disk
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                with (
                    open(db + suffix, "rb") as src,
                    open(tmp_path / f"full.db{suffix}", "wb") as dst,
                ):
                    dst.write(src.read())
        db = str(tmp_path / "full.db")
    assert proc(db, "reconcile", "--stale-after", "0").code == 0
    again = proc(db, "batch", str(sales))
    ok_rows = [json.loads(x) for x in again.stdout.splitlines()][:-1]
    # a row whose order reconcile failed (no charge yet) replays that failure: no double sale
    assert all(r["ok"] or r["error"]["code"] == "PAYMENT_DECLINED" for r in ok_rows)
    assert count(db, "SELECT count(*) FROM orders") == rows + 1
    assert count(db, "SELECT count(*) FROM orders WHERE status = 'PENDING'") == 0
    paid = count(db, "SELECT count(*) FROM orders WHERE status = 'PAID'")
    assert type_counts(db, ids["ga"]) == (paid, 0)
    assert count(db, "SELECT count(*) FROM mockpay_charges WHERE status = 'captured'") == paid - 1
    assert proc(db, "doctor").code == 0


@pytest.mark.parametrize("damage", ["truncate", "scribble"])
def test_damaged_database_file_is_a_clear_error(tmp_path, damage):
    db = str(tmp_path / "bad.db")
    ids = seed(db)
    assert proc(db, "purchase", "-i", f"{ids['ga']}:2", "--pay", "cash").code == 0
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = os.path.getsize(db)
    with open(db, "r+b") as fh:
        if damage == "truncate":
            fh.truncate(size // 3)
        else:
            fh.seek(4096)
            fh.write(os.urandom(size - 4096))
    for args in (
        ["event", "list"],
        ["doctor"],
        ["purchase", "-i", f"{ids['ga']}:1", "--pay", "cash"],
    ):
        out = proc(db, *args)
        assert out.code in (7, 9), (args, out.code, out.stderr)
        assert "Traceback" not in out.stderr
        if out.code == 7:
            assert out.error["code"] == "DB_ERROR"


# ------------------------------------------------------------------ the PostgreSQL analogues

HOLDER_PG = r"""
import sys, time, psycopg
from tickethub_cli.store.postgres import WRITE_LOCK
conn = psycopg.connect(sys.argv[1], autocommit=True)
conn.execute("BEGIN")
conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
print("locked", flush=True)
time.sleep(float(sys.argv[2]))  # the fault under test: a writer that keeps the lock
conn.execute("ROLLBACK")
print("released", flush=True)
"""


def test_pg_lock_held_busy_within_budget_then_waits_and_succeeds(pg_server):
    db = pg_server.new_database()
    ids = seed(db)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_PG, db, "4"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    before = dump(db)
    started = time.monotonic()
    patient = subprocess.Popen(
        [
            tickethub_exe(),
            "--db",
            db,
            "--json",
            "purchase",
            "-i",
            f"{ids['ga']}:1",
            "--pay",
            "cash",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TICKETHUB_BUSY_TIMEOUT": "30"},
    )
    hasty = proc(
        db,
        "purchase",
        "-i",
        f"{ids['ga']}:1",
        "--pay",
        "cash",
        env={"TICKETHUB_BUSY_TIMEOUT": "0.5"},
    )
    assert hasty.code == 7 and hasty.error["code"] == "DB_BUSY", hasty.stderr
    assert "Traceback" not in hasty.stderr and hasty.stdout == ""
    assert dump(db) == before  # the refused command changed nothing
    out, err = patient.communicate(timeout=60)
    assert patient.returncode == 0, err
    assert json.loads(out)["order"]["status"] == "PAID"
    assert time.monotonic() - started >= 2  # it really waited for the lock
    assert holder.wait(timeout=30) == 0
    assert type_counts(db, ids["ga"]) == (1, 0)
    assert proc(db, "doctor").code == 0


def test_pg_read_only_database_is_a_clear_error_and_recovers(pg_server):
    """PostgreSQL's read-only file: a database (or a standby) that refuses writes."""
    db = pg_server.new_database()
    ids = seed(db)
    assert proc(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "cash").code == 0
    name = urlsplit(db).path.lstrip("/")
    raw_execute(pg_server.url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    try:
        before = dump(db)
        out = proc(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "cash")
        assert out.code == 7, out.stderr
        assert out.error["code"] == "DB_ERROR" and "Traceback" not in out.stderr
        assert "read-only" in out.error["message"]
        assert dump(db) == before
    finally:
        raw_execute(pg_server.url, f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
    assert proc(db, "reconcile", "--stale-after", "0").code == 0
    assert proc(db, "doctor").code == 0
    assert type_counts(db, ids["ga"]) == (1, 0)


def test_pg_unreachable_server_is_a_clear_error(tmp_path):
    """PostgreSQL's damaged file: nothing answers at the address."""
    db = f"postgresql://tickethub:S3cr3t@/box?host={tmp_path}"  # no server on that socket
    for args in (["event", "list"], ["doctor"], ["init"]):
        out = proc(db, *args)
        assert out.code == 7 and out.error["code"] == "DB_ERROR", (args, out.stderr)
        assert "cannot reach" in out.error["message"] and "Traceback" not in out.stderr
        assert "S3cr3t" not in out.stderr

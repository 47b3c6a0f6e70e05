"""Real processes: contention for the last seats, one key retried by many, crashes at every
fault point followed by reconcile or by a retry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter

import pytest
from support import OK_CARD, count, healthy, proc, seed, tickethub_exe, type_counts


def spawn(db: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [tickethub_exe(), "--db", db, "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def finish(p: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err


def test_24_buyers_for_the_last_10_seats(make_db):
    db = make_db("rush")
    ids = seed(db, capacity=10)
    procs = [spawn(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "cash") for _ in range(24)]
    results = [finish(p) for p in procs]
    codes = Counter(code for code, _, _ in results)
    assert codes == {0: 10, 5: 14}, [r[2] for r in results if r[0] not in (0, 5)]
    for code, _, err in results:
        assert "Traceback" not in err
        if code == 5:
            assert json.loads(err)["error"]["code"] == "SOLD_OUT"
    assert type_counts(db, ids["ga"]) == (10, 0)
    assert count(db, "SELECT count(*) FROM tickets WHERE status = 'valid'") == 10
    healthy(db)


def test_12_processes_retrying_one_key_make_one_order(make_db):
    db = make_db("retry")
    ids = seed(db)
    args = ["purchase", "-i", f"{ids['ga']}:2", "--pay", "card", "--card", OK_CARD, "-k", "one-key"]
    results = [finish(p) for p in [spawn(db, *args) for _ in range(12)]]
    order_ids = set()
    for code, out, err in results:
        assert code in (0, 4), err
        if code == 0:
            order_ids.add(json.loads(out)["order"]["id"])
        else:
            assert json.loads(err)["error"]["code"] == "IN_PROGRESS"
    assert len(order_ids) == 1
    assert count(db, "SELECT count(*) FROM orders") == 1
    assert count(db, "SELECT count(*) FROM mockpay_charges") == 1
    assert count(db, "SELECT count(*) FROM tickets") == 2
    final = proc(db, *args)
    assert final.code == 0 and final.json["replayed"] is True
    healthy(db)


FAULTS = {
    # fault point -> how reconcile must end the order (a charge exists after the charge)
    "after_reserve": "FAILED",
    "after_charge": "PAID",
    "before_issue": "PAID",
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_crash_then_reconcile(make_db, fault):
    db = make_db("crash")
    ids = seed(db)
    crashed = proc(
        db,
        "purchase",
        "-i",
        f"{ids['ga']}:3",
        "--pay",
        "card",
        "--card",
        OK_CARD,
        "-k",
        "crashy",
        env={"TICKETHUB_FAULT": fault},
    )
    assert crashed.code == 137 and crashed.stdout == ""
    assert count(db, "SELECT count(*) FROM orders WHERE status = 'PENDING'") == 1
    assert type_counts(db, ids["ga"]) == (0, 3)
    rep = proc(db, "reconcile", "--stale-after", "0")
    assert rep.code == 0, rep.stderr
    assert [(r["from"], r["to"]) for r in rep.json["repaired"]] == [("PENDING", FAULTS[fault])]
    expected = (3, 0) if FAULTS[fault] == "PAID" else (0, 0)
    assert type_counts(db, ids["ga"]) == expected
    assert count(db, "SELECT count(*) FROM tickets") == (3 if FAULTS[fault] == "PAID" else 0)
    if FAULTS[fault] == "FAILED":  # voided at the provider: a slow worker can no longer charge
        assert count(db, "SELECT count(*) FROM mockpay_charges WHERE status = 'voided'") == 1
    assert proc(db, "reconcile", "--stale-after", "0").json["repaired"] == []
    doc = proc(db, "doctor")
    assert doc.code == 0 and doc.json == {"ok": True, "problems": []}
    # a retry after reconcile replays the final outcome, never a second order or charge
    retry = proc(
        db, "purchase", "-i", f"{ids['ga']}:3", "--pay", "card", "--card", OK_CARD, "-k", "crashy"
    )
    assert retry.code == (0 if FAULTS[fault] == "PAID" else 6)
    assert count(db, "SELECT count(*) FROM orders") == 1
    charged = 1 if FAULTS[fault] == "PAID" else 0  # after_reserve: the provider never saw it
    assert count(db, "SELECT count(*) FROM payments") == 1  # one attempt, whatever happened
    assert count(db, "SELECT count(*) FROM payments WHERE status = 'captured'") == charged
    assert count(db, "SELECT count(*) FROM mockpay_charges WHERE status = 'captured'") == charged


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_crash_then_retry_with_same_key(make_db, fault):
    db = make_db("resume")
    ids = seed(db)
    args = ["purchase", "-i", f"{ids['ga']}:2", "--pay", "card", "--card", OK_CARD, "-k", "again"]
    crashed = proc(db, *args, env={"TICKETHUB_FAULT": fault})
    assert crashed.code == 137
    retry = proc(db, *args)
    assert retry.code == 0, retry.stderr
    assert retry.json["replayed"] is True
    order = retry.json["order"]
    assert order["status"] == "PAID" and len(order["tickets"]) == 2
    assert count(db, "SELECT count(*) FROM orders") == 1
    assert count(db, "SELECT count(*) FROM mockpay_charges") == 1
    assert count(db, "SELECT count(*) FROM payments") == 1
    assert count(db, "SELECT count(*) FROM payments WHERE status = 'captured'") == 1
    assert type_counts(db, ids["ga"]) == (2, 0)
    healthy(db)


def test_cash_crash_after_reserve_then_retry(make_db):
    db = make_db("cash")
    ids = seed(db)
    args = ["purchase", "-i", f"{ids['ga']}:1", "--pay", "cash", "-k", "cash-1"]
    assert proc(db, *args, env={"TICKETHUB_FAULT": "after_reserve"}).code == 137
    retry = proc(db, *args)
    assert retry.code == 0 and retry.json["order"]["status"] == "PAID"
    healthy(db)


def test_kill_9_mid_purchase_then_reconcile(make_db):
    """Real kill -9 (not a fault point), wherever it lands: six card purchases are killed as
    soon as the first order exists, some before their reservation, some holding the write
    lock, some between the charge and the settlement. Reconcile then leaves no order open,
    every PAID order has exactly one capture at the provider and no other order has any,
    and a retry of each key charges nothing more."""
    db = make_db("kill9")
    ids = seed(db, capacity=30)
    argv = ["purchase", "-i", f"{ids['ga']}:2", "--pay", "card", "--card", OK_CARD]
    procs = [spawn(db, *argv, "-k", f"kill-{n}") for n in range(6)]
    deadline = time.monotonic() + 60
    while count(db, "SELECT count(*) FROM orders") == 0:  # polling the outcome, not a sleep
        assert time.monotonic() < deadline and any(p.poll() is None for p in procs)
    for p in procs:
        p.send_signal(signal.SIGKILL)
    codes = [finish(p)[0] for p in procs]
    assert set(codes) <= {0, -signal.SIGKILL}, codes
    rep = proc(db, "reconcile", "--stale-after", "0")
    assert rep.code == 0, rep.stderr
    assert proc(db, "reconcile", "--stale-after", "0").json["repaired"] == []
    assert count(db, "SELECT count(*) FROM orders WHERE status = 'PENDING'") == 0
    captured = "SELECT count(*) FROM mockpay_charges m WHERE m.status = 'captured'"
    paid = count(db, "SELECT count(*) FROM orders WHERE status = 'PAID'")
    assert count(db, captured) == paid
    assert (
        count(db, captured + " AND m.order_id IN (SELECT id FROM orders WHERE status <> 'PAID')")
        == 0
    )
    assert type_counts(db, ids["ga"]) == (2 * paid, 0)
    healthy(db)
    for n in range(6):  # each buyer retries: the final outcome, never a second charge
        again = proc(db, *argv, "-k", f"kill-{n}")
        assert again.code in (0, 6), again.stderr  # 6: its card attempt was voided
    assert count(db, "SELECT count(DISTINCT idempotency_key) FROM orders") == 6
    assert count(db, "SELECT count(*) FROM orders") == 6
    assert count(db, captured) == count(db, "SELECT count(*) FROM orders WHERE status = 'PAID'")
    healthy(db)

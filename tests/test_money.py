"""Money is exact: every reproduction of the money issue as a real-process regression test.

Each test names the case it reproduces. On the version-1 build each of them fails (a second
capture or refund, a refused callback that wrote, a cash sale declined, a resold admitted
seat, a fingerprint that depends on the whole card number, a batch that sold less than a
row-by-row run); the old databases in tests/fixtures show what `doctor` now finds in them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from support import (
    DECLINED_CARD,
    OK_CARD,
    TIMEOUT_CARD,
    count,
    dump,
    healthy,
    proc,
    seed,
    tickethub_exe,
    type_counts,
)

from tickethub_cli import callbacks
from tickethub_cli import db as dbmod
from tickethub_cli.store.url import is_postgres

SECRET = "money-secret"
ENV = {"TICKETHUB_WEBHOOK_SECRET": SECRET}
FIXTURES = Path(__file__).parent / "fixtures"


def callback(db: str, tmp_path: Path, body: dict, name: str = "cb.json"):
    payload = json.dumps(body).encode()
    path = tmp_path / name
    path.write_bytes(payload)
    sig = callbacks.sign(payload, SECRET)
    return proc(db, "payment", "callback", "--payload", str(path), "--signature", sig, env=ENV)


def ledger(db: str, order_id: int | None = None) -> list[dict]:
    args = ["payment", "ledger", *(["--order", str(order_id)] if order_id else [])]
    out = proc(db, *args)
    assert out.code == 0, out.stderr
    return out.json["charges"]


def captured_at_provider(db: str) -> int:
    return count(db, "SELECT count(*) FROM mockpay_charges WHERE status = 'captured'")


@pytest.fixture
def shop(make_db):
    db = make_db("shop")
    return db, seed(db)


# ------------------------------------------------ 1. unknown outcome, then cash at the desk


def test_cash_after_unknown_outcome_keeps_one_capture(shop, tmp_path):
    db, ids = shop
    first = proc(db, "purchase", "-i", f"{ids['ga']}:2", "--pay", "card", "--card", TIMEOUT_CARD)
    assert first.code == 6
    err = first.error
    oid = err["order_id"]
    cash = proc(db, "order", "pay", str(oid), "--pay", "cash")
    assert cash.code == 4, cash.stdout  # asked the provider first: the card went through
    assert cash.error["code"] == "INVALID_STATE" and "take no cash" in cash.error["message"]
    assert err["code"] == "PAYMENT_UNKNOWN" and err["idempotency_key"].startswith("auto-")
    assert "do not take another payment" in err["hint"]
    assert type_counts(db, ids["ga"]) == (2, 0)
    order = proc(db, "order", "show", str(oid)).json["order"]
    assert order["status"] == "PAID" and order["pay_method"] == "card"
    assert [p["status"] for p in order["payments"]] == ["captured"]
    late = callback(
        db, tmp_path, {"id": "late-1", "order_id": oid, "status": "succeeded", "amount_minor": 4000}
    )
    assert late.code == 0 and late.json["order"]["status"] == "PAID"
    assert proc(db, "reconcile", "--stale-after", "0").json["repaired"] == []
    assert [c["status"] for c in ledger(db, oid)] == ["captured"]
    assert count(db, "SELECT count(*) FROM payments WHERE status = 'captured'") == 1
    healthy(db)


def test_cash_after_a_crash_behind_the_charge_keeps_one_capture(shop):
    db, ids = shop
    args = ["purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD, "-k", "k1"]
    assert proc(db, *args, env={"TICKETHUB_FAULT": "after_charge"}).code == 137
    oid = count(db, "SELECT id FROM orders")
    cash = proc(db, "order", "pay", str(oid), "--pay", "cash")
    assert cash.code == 4 and cash.error["code"] == "INVALID_STATE"
    assert captured_at_provider(db) == 1
    assert count(db, "SELECT count(*) FROM payments WHERE method = 'cash'") == 0
    healthy(db)


def test_cash_after_a_crash_before_the_charge_voids_the_card_first(shop):
    db, ids = shop
    args = ["purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD, "-k", "k2"]
    assert proc(db, *args, env={"TICKETHUB_FAULT": "after_reserve"}).code == 137
    oid = count(db, "SELECT id FROM orders")
    cash = proc(db, "order", "pay", str(oid), "--pay", "cash")
    assert cash.code == 0, cash.stderr
    order = cash.json["order"]
    assert order["status"] == "PAID" and order["pay_method"] == "cash"
    assert [(p["method"], p["status"]) for p in order["payments"]] == [
        ("card", "voided"),
        ("cash", "captured"),
    ]
    # the first buyer's process, had it only been slow, can no longer charge the card
    retry = proc(db, *args)
    assert retry.code == 0 and retry.json["order"]["pay_method"] == "cash"
    assert captured_at_provider(db) == 0
    healthy(db)


def test_cancel_of_an_unknown_outcome_asks_the_provider_and_refunds(shop):
    db, ids = shop
    first = proc(db, "purchase", "-i", f"{ids['ga']}:2", "--pay", "card", "--card", TIMEOUT_CARD)
    oid = first.error["order_id"]
    out = proc(db, "order", "cancel", str(oid))
    assert out.code == 0, out.stderr
    order = out.json["order"]
    assert order["status"] == "CANCELLED"
    assert [(p["status"], p["refunded_minor"]) for p in order["payments"]] == [("refunded", 4000)]
    assert [(c["status"], c["refunded_minor"]) for c in ledger(db, oid)] == [("refunded", 4000)]
    assert type_counts(db, ids["ga"]) == (0, 0)
    healthy(db)


def test_reconcile_one_order_resolves_it_now(shop):
    db, ids = shop
    first = proc(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", TIMEOUT_CARD)
    oid = first.error["order_id"]
    # the default --stale-after (60 s) would leave it; --order resolves it at once
    assert proc(db, "reconcile").json["repaired"] == []
    out = proc(db, "reconcile", "--order", str(oid))
    assert out.code == 0, out.stderr
    assert [(r["order_id"], r["to"]) for r in out.json["repaired"]] == [(oid, "PAID")]
    assert proc(db, "reconcile", "--order", "999").code == 3
    healthy(db)


# ---------------------------------------------- 2. an error after the charge names the key


def test_busy_after_charge_names_order_and_key_and_retry_charges_once(shop):
    db, ids = shop
    args = ["purchase", "-i", f"{ids['ga']}:2", "--pay", "card", "--card", OK_CARD]
    busy = proc(db, *args, env={"TICKETHUB_FAULT": "busy_after_charge"})
    assert busy.code == 7, busy.stderr
    err = busy.error
    assert err["code"] == "DB_BUSY" and err["payment_may_exist"] is True
    assert "nothing was changed" not in err["message"] and "may have been taken" in err["message"]
    key, oid = err["idempotency_key"], err["order_id"]
    assert key in err["hint"]
    retry = proc(db, *args, "-k", key)
    assert retry.code == 0, retry.stderr
    assert retry.json["order"]["id"] == oid and retry.json["order"]["status"] == "PAID"
    assert count(db, "SELECT count(*) FROM orders") == 1
    assert [c["status"] for c in ledger(db)] == ["captured"]
    assert proc(db, "reconcile", "--stale-after", "0").json["repaired"] == []
    healthy(db)


def test_busy_after_charge_in_human_mode_says_a_payment_may_exist(shop):
    db, ids = shop
    done = subprocess.run(
        [tickethub_exe(), "--db", db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "cash"],
        capture_output=True,
        text=True,
        env={**os.environ, "TICKETHUB_FAULT": "busy_after_charge"},
    )
    assert done.returncode == 7 and done.stdout == ""
    line = done.stderr.strip()
    assert line.count("\n") == 0 and "may have been taken" in line and "--idempotency-key" in line


# ----------------------------------------------------------------------- 3. refunds twice


def test_late_success_after_a_paid_cancel_refunds_nothing_more(shop, tmp_path):
    db, ids = shop
    sale = proc(db, "purchase", "-i", f"{ids['ga']}:2", "--pay", "card", "--card", OK_CARD)
    oid = sale.json["order"]["id"]
    assert proc(db, "order", "cancel", str(oid)).code == 0
    body = {"id": "delayed", "order_id": oid, "status": "succeeded", "amount_minor": 4000}
    again = callback(db, tmp_path, body)
    assert again.code == 0 and again.json["order"]["status"] == "CANCELLED"
    payments = again.json["order"]["payments"]
    assert [(p["status"], p["refunded_minor"]) for p in payments] == [("refunded", 4000)]
    assert [(c["status"], c["refunded_minor"]) for c in ledger(db)] == [("refunded", 4000)]
    assert count(db, "SELECT outcome FROM callbacks WHERE callback_id = 'delayed'") == "known"
    healthy(db)


def test_late_success_killed_after_its_refund_is_not_refunded_again(shop, tmp_path):
    db, ids = shop
    created = proc(db, "order", "create", "-i", f"{ids['ga']}:1", "--hold-minutes", "1")
    oid = created.json["order"]["id"]
    body = {"id": "late", "order_id": oid, "status": "succeeded", "amount_minor": 2000}
    payload = json.dumps(body).encode()
    (tmp_path / "late.json").write_bytes(payload)
    env = {**ENV, "TICKETHUB_CLOCK_OFFSET": "120", "TICKETHUB_FAULT": "after_refund"}
    args = ["payment", "callback", "--payload", str(tmp_path / "late.json")]
    killed = proc(db, *args, "--signature", callbacks.sign(payload, SECRET), env=env)
    assert killed.code == 137
    assert [c["status"] for c in ledger(db)] == ["refunded"]  # the provider gave it back
    rep = proc(db, "reconcile", env={"TICKETHUB_CLOCK_OFFSET": "120"})
    assert rep.code == 0, rep.stderr
    assert [r["reason"] for r in rep.json["repaired"]] == ["refunded"]
    assert [(c["status"], c["refunded_minor"]) for c in ledger(db)] == [("refunded", 2000)]
    assert count(db, "SELECT count(*) FROM payments WHERE status = 'refunded'") == 1
    assert proc(db, "reconcile").json["repaired"] == []
    healthy(db)


# ------------------------------------------------------------ 4. a refused callback writes


def test_a_refused_callback_writes_nothing_and_voids_nothing(shop, tmp_path):
    db, ids = shop
    oid = proc(db, "order", "create", "-i", f"{ids['ga']}:1").json["order"]["id"]
    before = dump(db)
    body = {"id": "wrong", "order_id": oid, "status": "failed", "amount_minor": 1}
    out = callback(db, tmp_path, body)
    assert out.code == 2 and out.error["code"] == "AMOUNT_MISMATCH"
    assert dump(db) == before
    paid = proc(db, "order", "pay", str(oid), "--pay", "card", "--card", OK_CARD)
    assert paid.code == 0 and paid.json["order"]["status"] == "PAID"
    healthy(db)


def test_a_refused_callback_for_an_order_being_paid_leaves_its_charge_alone(shop, tmp_path):
    db, ids = shop
    args = ["purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD, "-k", "v"]
    assert proc(db, *args, env={"TICKETHUB_FAULT": "after_reserve"}).code == 137
    oid = count(db, "SELECT id FROM orders")
    before = dump(db)
    wrong = {"id": "w", "order_id": oid, "status": "failed", "amount_minor": 7}
    assert callback(db, tmp_path, wrong).code == 2
    assert dump(db) == before
    assert proc(db, *args).code == 0  # the buyer's retry still charges and pays
    healthy(db)


# ------------------------------------------------------------------ 5. crashed cash sale


def test_a_crashed_cash_sale_is_completed_never_declined(shop):
    db, ids = shop
    args = ["purchase", "-i", f"{ids['ga']}:2", "--pay", "cash", "-k", "cash-1"]
    assert proc(db, *args, env={"TICKETHUB_FAULT": "after_charge"}).code == 137
    rep = proc(db, "reconcile", "--stale-after", "0")
    assert [(r["from"], r["to"]) for r in rep.json["repaired"]] == [("PENDING", "PAID")]
    retry = proc(db, *args)
    assert retry.code == 0 and retry.json["order"]["status"] == "PAID"
    assert ledger(db) == []  # cash never reaches the card provider
    healthy(db)


def test_a_crashed_cash_sale_retried_at_once_is_completed(shop):
    db, ids = shop
    args = ["purchase", "-i", f"{ids['ga']}:1", "--pay", "cash", "-k", "cash-2"]
    assert proc(db, *args, env={"TICKETHUB_FAULT": "after_charge"}).code == 137
    retry = proc(db, *args)
    assert retry.code == 0 and retry.json["order"]["status"] == "PAID"
    assert ledger(db) == []
    healthy(db)


# --------------------------------------------------- 6. admitted, refunded, then resold


def test_cancelling_admitted_tickets_needs_force_and_keeps_the_seats(make_db):
    db = make_db("door")
    ids = seed(db, capacity=2)
    ga = ids["ga"]
    sale = proc(db, "purchase", "-i", f"{ga}:2", "--pay", "card", "--card", OK_CARD)
    oid = sale.json["order"]["id"]
    for t in sale.json["order"]["tickets"]:
        assert proc(db, "validate", t["code"], "--event", str(ids["event"])).code == 0
    before = dump(db)
    refused = proc(db, "order", "cancel", str(oid))
    assert refused.code == 4 and "--force" in refused.error["message"]
    assert dump(db) == before
    forced = proc(db, "order", "cancel", str(oid), "--force", "--reason", "show called off")
    assert forced.code == 0, forced.stderr
    assert forced.json["order"]["status"] == "CANCELLED"
    assert [c["status"] for c in ledger(db)] == ["refunded"]
    assert type_counts(db, ga) == (2, 0)  # the two people are inside: their seats stay used
    resale = proc(db, "purchase", "-i", f"{ga}:2", "--pay", "cash")
    assert resale.code == 5 and resale.error["code"] == "SOLD_OUT"
    healthy(db)


# -------------------------------------------------------------- 7. card numbers in storage


def test_fingerprints_keep_only_six_and_four_digits(shop):
    db, ids = shop
    card = "4539148803436467"
    twin = "4539141000076467"  # same first six and last four, other middle digits
    args = ["purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "-k", "fp-1"]
    first = proc(db, *args, "--card", card)
    assert first.code == 0, first.stderr
    again = proc(db, *args, "--card", twin)
    assert again.code == 0 and again.json["replayed"] is True  # nothing depends on the middle
    if not is_postgres(db):  # the file itself (PostgreSQL's files are the server's)
        raw = b"".join(Path(p).read_bytes() for p in (db, db + "-wal") if os.path.exists(p))
        assert card.encode() not in raw and b"880343" not in raw
    text = dump(db)
    assert card not in text and "880343" not in text


def test_card_number_from_stdin(shop):
    db, ids = shop
    sale = ["purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", "-"]
    done = subprocess.run(
        [tickethub_exe(), "--db", db, "--json", *sale],
        input=OK_CARD + "\n",
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    payment = json.loads(done.stdout)["order"]["payments"][0]
    assert payment["card_last4"] == OK_CARD[-4:] and payment["status"] == "captured"


# ----------------------------------------------------- 8. batch group commit keeps outcomes


def _batch_file(path: Path, rows: int, declined: set[int]) -> None:
    lines = ["idempotency_key,ticket_type_id,quantity,email,name,pay,card"]
    for n in range(1, rows + 1):
        card = DECLINED_CARD if n in declined else OK_CARD
        lines.append(f"row-{n},1,1,,,card,{card}")
    path.write_text("\n".join(lines) + "\n")


def test_batch_outcome_equals_the_row_by_row_outcome(make_db, tmp_path):
    file = tmp_path / "sales.csv"
    _batch_file(file, 40, declined={3, 9, 14, 22})
    grouped, single = make_db("grouped"), make_db("single")
    outcomes = []
    for path, stdin_pipe in ((grouped, False), (single, True)):
        seed(path, capacity=30)
        if stdin_pipe:  # a pipe runs row by row (no group commit)
            out = subprocess.run(
                [tickethub_exe(), "--db", path, "--json", "batch", "-"],
                input=file.read_text(),
                capture_output=True,
                text=True,
            )
        else:
            out = subprocess.run(
                [tickethub_exe(), "--db", path, "--json", "batch", str(file)],
                capture_output=True,
                text=True,
            )
        assert out.returncode == 8, out.stderr
        lines = [json.loads(x) for x in out.stdout.splitlines()]
        outcomes.append(
            [(r["row"], r["ok"], (r.get("error") or {}).get("code")) for r in lines[:-1]]
        )
        summary = lines[-1]["summary"]
        assert (summary["ok"], summary["failed"]) == (30, 10)
        assert type_counts(path, 1) == (30, 0)
        healthy(path)
    assert outcomes[0] == outcomes[1]
    codes = [c for _, ok, c in outcomes[0] if not ok]
    assert codes.count("PAYMENT_DECLINED") == 4 and codes.count("SOLD_OUT") == 6


# ------------------------------------------------- doctor on databases of the old build


def load_v1(tmp_path: Path, name: str) -> str:
    """A database the version-1 build made (its dump), upgraded by `init`."""
    path = str(tmp_path / f"{name}.db")
    conn = sqlite3.connect(path)
    conn.executescript((FIXTURES / f"{name}.sql").read_text())
    conn.execute(f"PRAGMA application_id = {dbmod.APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    out = proc(path, "init")
    assert out.code == 0 and out.json["schema_version"] == dbmod.SCHEMA_VERSION, out.stderr
    return path


@pytest.mark.parametrize(
    ("name", "checks"),
    [
        ("v1_case1_cash_after_unknown", {"provider_charges_recorded"}),
        (
            "v1_case3_refund_twice",
            {"money_matches_status", "refunds_within_captures", "provider_agrees"},
        ),
        ("v1_case6_resold_admitted", {"sold_matches_tickets", "admitted_within_capacity"}),
    ],
)
def test_doctor_finds_what_the_old_build_did(tmp_path, name, checks):
    path = load_v1(tmp_path, name)
    out = proc(path, "doctor")
    assert out.code == 9
    assert {p["check"] for p in out.json["problems"]} == checks


def test_a_healthy_old_database_upgrades_healthy(tmp_path):
    path = load_v1(tmp_path, "v1_healthy_mixed")
    doc = proc(path, "doctor")
    assert doc.code == 0, doc.json
    assert count(path, "SELECT count(*) FROM idempotency_keys WHERE fingerprint <> 'legacy'") == 0
    # an old key still replays its order (never a second charge)
    again = proc(path, "purchase", "-i", "1:2", "--pay", "card", "--card", OK_CARD, "-k", "a")
    assert again.code == 0 and again.json["replayed"] is True
    # nothing was left open by the upgrade (the fixture's one PENDING hold may have expired)
    repaired = proc(path, "reconcile", "--stale-after", "0").json["repaired"]
    assert {r["reason"] for r in repaired} <= {"hold_expired"}
    healthy(path)


def test_undoing_the_admission_of_a_force_cancelled_ticket_frees_its_seat(make_db):
    db = make_db("undo")
    ids = seed(db, capacity=1)
    sale = proc(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "cash")
    code = sale.json["order"]["tickets"][0]["code"]
    assert proc(db, "validate", code, "--event", str(ids["event"])).code == 0
    oid = str(sale.json["order"]["id"])
    assert proc(db, "order", "cancel", oid, "--force").code == 0
    assert type_counts(db, ids["ga"]) == (1, 0)
    undo = proc(db, "checkin", "undo", code, "--event", str(ids["event"]))
    assert undo.code == 0, undo.stderr
    assert type_counts(db, ids["ga"]) == (0, 0)  # nobody inside: the seat is for sale again
    assert proc(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "cash").code == 0
    healthy(db)


# ------------------------------------------ found by review: races and retries of the above


def _signed(body: dict) -> tuple[bytes, str]:
    payload = json.dumps(body).encode()
    return payload, callbacks.sign(payload, SECRET)


def test_twin_success_callbacks_leave_no_capture_unrecorded(shop, monkeypatch):
    """Two success callbacks for one order, the second landing while the first is between
    asking the provider and applying: the first used to find the order paid ("known") and
    leave the provider's charge for it recorded nowhere, never refunded."""
    import tickethub_cli as th
    from tickethub_cli import orders

    db, ids = shop
    monkeypatch.setenv("TICKETHUB_WEBHOOK_SECRET", SECRET)
    first, twin = th.open_session(db), th.open_session(db)
    oid = orders.create_order(
        first, orders.OrderRequest.parse(items=[f"{ids['ga']}:2"], require_pay=False)
    ).order["id"]
    body = {"order_id": oid, "status": "succeeded", "amount_minor": 4000}
    real = first.provider.notified

    def notified_then_twin(*args):
        said = real(*args)
        callbacks.handle(twin, *_signed({**body, "id": "B"}))  # the twin lands first
        return said

    monkeypatch.setattr(first.provider, "notified", notified_then_twin)
    order = callbacks.handle(first, *_signed({**body, "id": "A"}))
    first.close()
    twin.close()
    assert order["status"] == "PAID"
    assert sorted(p["status"] for p in order["payments"]) == ["captured", "refunded"]
    kept = [c for c in ledger(db, oid) if c["status"] == "captured"]
    assert len(kept) == 1
    healthy(db)


def test_paying_an_expired_hold_is_refused_after_settling_the_old_attempt(shop):
    db, ids = shop
    args = ["purchase", "-i", f"{ids['ga']}:2", "--pay", "card", "--card", OK_CARD, "-k", "x"]
    assert proc(db, *args, env={"TICKETHUB_FAULT": "after_reserve"}).code == 137
    late = {"TICKETHUB_CLOCK_OFFSET": "3600"}
    pay = proc(db, "order", "pay", "1", "--pay", "card", "--card", OK_CARD, env=late)
    assert pay.code == 4 and "expired" in pay.error["message"]
    assert captured_at_provider(db) == 0  # the old attempt was voided, no new charge
    proc(db, "reconcile", env=late)
    assert count(db, "SELECT status FROM orders") == "CANCELLED"
    healthy(db)


def test_a_payer_that_lost_the_race_is_told_so_not_db_error(shop, monkeypatch):
    """Two payers for one order: the second reads "nothing open", then the first opens an
    attempt (outcome unknown) before the second's transaction: IN_PROGRESS, not a raw
    UNIQUE constraint error."""
    import tickethub_cli as th
    from tickethub_cli import orders
    from tickethub_cli.errors import ErrorCode, TicketHubError

    db, ids = shop
    late, rival = th.open_session(db), th.open_session(db)
    oid = orders.create_order(
        late, orders.OrderRequest.parse(items=[f"{ids['ga']}:1"], require_pay=False)
    ).order["id"]
    real = orders.resolve_open_payment

    def resolve_then_rival(s, order_id, **kw):
        outcome = real(s, order_id, **kw)
        monkeypatch.setattr(orders, "resolve_open_payment", real)
        with pytest.raises(TicketHubError) as unknown:
            orders.pay_order(rival, order_id, pay="card", card=TIMEOUT_CARD)
        assert unknown.value.code == ErrorCode.PAYMENT_UNKNOWN
        return outcome

    monkeypatch.setattr(orders, "resolve_open_payment", resolve_then_rival)
    with pytest.raises(TicketHubError) as lost:
        orders.pay_order(late, oid, pay="cash", card=None)
    assert lost.value.code == ErrorCode.IN_PROGRESS
    assert "take no other payment" in lost.value.message
    late.close()
    rival.close()
    assert count(db, "SELECT count(*) FROM payments WHERE method = 'cash'") == 0


def test_a_cancel_retried_after_a_crash_finishes_its_refund(shop):
    db, ids = shop
    sale = proc(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD)
    oid = str(sale.json["order"]["id"])
    killed = proc(db, "order", "cancel", oid, env={"TICKETHUB_FAULT": "after_refund"})
    assert killed.code == 137
    again = proc(db, "order", "cancel", oid)
    assert again.code == 0, again.stderr
    assert [(p["status"], p["refund"]) for p in again.json["order"]["payments"]] == [
        ("refunded", "done")
    ]
    assert [(c["status"], c["refunded_minor"]) for c in ledger(db)] == [("refunded", 2000)]
    assert proc(db, "order", "cancel", oid).code == 4  # nothing left to finish: illegal again
    healthy(db)


def test_a_database_really_busy_after_the_charge_never_says_nothing_changed(shop, monkeypatch):
    """The settlement meets the write lock held by another writer (not the fault point):
    the error must say a payment may exist, never the busy error's own "nothing was
    changed", and a retry with its key settles the one charge."""
    import tickethub_cli as th
    from tickethub_cli import db as dbm
    from tickethub_cli import orders
    from tickethub_cli.errors import ErrorCode, TicketHubError
    from tickethub_cli.settings import Settings

    db, ids = shop
    s = th.open_session(Settings(db_path=db, busy_timeout_s=0.2), operator="clerk")
    rival = dbm.connect(db)
    real = s.provider.charge

    def charge_then_rival_takes_the_lock(*args):
        said = real(*args)
        rival.begin_write()  # another writer holds the lock past our busy budget
        return said

    monkeypatch.setattr(s.provider, "charge", charge_then_rival_takes_the_lock)
    req = orders.OrderRequest.parse(items=[f"{ids['ga']}:1"], pay="card", card=OK_CARD)
    with pytest.raises(TicketHubError) as busy:
        orders.purchase(s, req)
    rival.rollback()
    rival.close()
    err = busy.value
    assert err.code == ErrorCode.DB_BUSY and err.details["payment_may_exist"] is True
    assert "nothing was changed" not in err.message and "may have been taken" in err.message
    monkeypatch.setattr(s.provider, "charge", real)
    key = err.details["idempotency_key"]
    again = orders.purchase(s, req.model_copy(update={"idempotency_key": key}))
    s.close()
    assert again.replayed is True and again.order["status"] == "PAID"
    assert captured_at_provider(db) == 1
    healthy(db)


def test_a_callback_id_with_a_control_character_is_refused_and_writes_nothing(shop, tmp_path):
    """A NUL in the id (a JSON \\u0000 escape) cannot be stored on PostgreSQL: it ended there
    as DB_ERROR (exit 7), and was stored as is on SQLite. Refused at input on both."""
    db, ids = shop
    oid = proc(db, "order", "create", "-i", f"{ids['ga']}:1").json["order"]["id"]
    before = dump(db)
    for n, bad in enumerate(("a\x00b", "x\x1b[31m")):
        body = {"id": bad, "order_id": oid, "status": "succeeded", "amount_minor": 2000}
        out = callback(db, tmp_path, body, name=f"bad{n}.json")
        assert out.code == 2 and out.error["code"] == "INVALID_INPUT", out.stderr
        assert "control characters" in out.error["message"]
    assert dump(db) == before
    assert ledger(db) == []


def test_a_card_purchase_that_cannot_reach_the_provider_changes_nothing(shop, monkeypatch):
    """The provider's connection is a second one: a database that refuses it (PostgreSQL at
    max_connections) used to leave the order PENDING with its seats held, and an error that
    named neither order nor key. Now it is opened first: nothing is written."""
    import tickethub_cli as th
    from tickethub_cli import db as dbm
    from tickethub_cli import orders
    from tickethub_cli.errors import ErrorCode, TicketHubError

    db, ids = shop
    s = th.open_session(db, operator="clerk")
    before = dump(db)

    def refused(*args, **kw):
        raise TicketHubError(ErrorCode.DB_ERROR, "sorry, too many clients already")

    monkeypatch.setattr(dbm, "connect_external", refused)
    req = orders.OrderRequest.parse(items=[f"{ids['ga']}:2"], pay="card", card=OK_CARD)
    for attempt in (lambda: orders.purchase(s, req), lambda: orders.purchase_many(s, [req])):
        with pytest.raises(TicketHubError) as err:
            attempt()
        assert err.value.code == ErrorCode.DB_ERROR
        assert dump(db) == before
    cash = orders.OrderRequest.parse(items=[f"{ids['ga']}:1"], pay="cash")
    assert orders.purchase(s, cash).order["status"] == "PAID"  # cash needs no provider
    s.close()
    healthy(db)

"""Order life cycle: every legal and illegal transition, replays, callbacks, bad input."""

from __future__ import annotations

import json

import pytest
from support import (
    DECLINED_CARD,
    OK_CARD,
    TIMEOUT_CARD,
    buy,
    cli,
    count,
    dump,
    proc,
    seed,
    type_counts,
)

import tickethub_cli as th
from tickethub_cli import callbacks, clock, doctor, orders, reconcile
from tickethub_cli.errors import ErrorCode, TicketHubError


@pytest.fixture
def shop(make_db):
    path = make_db("shop")
    ids = seed(path)
    s = th.open_session(path, operator="clerk")
    yield path, ids, s
    s.close()
    clock.set_offset(0)


def charges(db: str, order_id: int) -> int:
    return count(db, "SELECT count(*) FROM mockpay_charges WHERE order_id = ?", order_id)


def assert_healthy(s: th.Session) -> None:
    assert doctor.check(s) == []


# ------------------------------------------------------------------ purchase through the CLI


def test_card_purchase_issues_tickets_and_replays(shop):
    db, ids, s = shop
    first = cli(
        db,
        "purchase",
        "--item",
        f"{ids['ga']}:2",
        "--email",
        "a@b.org",
        "--pay",
        "card",
        "--card",
        OK_CARD,
        "--idempotency-key",
        "k1",
    )
    assert first.code == 0, first.stderr
    order = first.json["order"]
    assert first.json["replayed"] is False
    assert order["status"] == "PAID" and order["total_minor"] == 4000
    assert len(order["tickets"]) == 2 and all(t["status"] == "valid" for t in order["tickets"])
    assert [h["to"] for h in order["history"]] == ["PENDING", "PAID"]
    again = cli(
        db,
        "purchase",
        "--item",
        f"{ids['ga']}:2",
        "--email",
        "a@b.org",
        "--pay",
        "card",
        "--card",
        OK_CARD,
        "--idempotency-key",
        "k1",
    )
    assert again.code == 0 and again.json["replayed"] is True
    assert again.json["order"]["id"] == order["id"]
    assert again.json["order"]["tickets"] == order["tickets"]
    assert charges(db, order["id"]) == 1
    assert count(db, "SELECT count(*) FROM orders") == 1
    assert type_counts(db, ids["ga"]) == (2, 0)
    assert_healthy(s)


def test_cash_walk_in_needs_no_email_and_sell_alias(shop):
    db, ids, _ = shop
    out = cli(db, "sell", "-i", f"{ids['ga']}:1", "--pay", "cash")
    assert out.code == 0, out.stderr
    order = out.json["order"]
    assert order["email"] is None and order["pay_method"] == "cash"
    assert order["idempotency_key"].startswith("auto-")
    assert charges(db, order["id"]) == 0  # cash never reaches the card provider


def test_same_key_different_request_is_mismatch_and_changes_nothing(shop):
    db, ids, _ = shop
    assert cli(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "cash", "-k", "same").code == 0
    before = dump(db)
    for variant in (
        ["-i", f"{ids['ga']}:2", "--pay", "cash"],
        ["-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD],
        ["-i", f"{ids['ga']}:1", "--pay", "cash", "--email", "x@y.org"],
    ):
        out = cli(db, "purchase", *variant, "-k", "same")
        assert out.code == 4 and out.error["code"] == "IDEMPOTENCY_MISMATCH"
        assert out.stdout == ""
    assert dump(db) == before


def test_declined_card_fails_order_and_replay_repeats_the_error(shop):
    db, ids, s = shop
    out = cli(
        db,
        "purchase",
        "-i",
        f"{ids['ga']}:3",
        "--pay",
        "card",
        "--card",
        DECLINED_CARD,
        "-k",
        "dec",
    )
    assert out.code == 6 and out.error["code"] == "PAYMENT_DECLINED"
    oid = out.error["order_id"]
    assert orders.get_order(s, oid)["status"] == "FAILED"
    assert type_counts(db, ids["ga"]) == (0, 0)
    again = cli(
        db,
        "purchase",
        "-i",
        f"{ids['ga']}:3",
        "--pay",
        "card",
        "--card",
        DECLINED_CARD,
        "-k",
        "dec",
    )
    assert again.code == 6 and again.error["order_id"] == oid
    assert charges(db, oid) == 1 and count(db, "SELECT count(*) FROM orders") == 1
    assert_healthy(s)


def test_unknown_outcome_then_retry_resumes_without_second_charge(shop):
    db, ids, s = shop
    out = cli(
        db,
        "purchase",
        "-i",
        f"{ids['ga']}:1",
        "--pay",
        "card",
        "--card",
        TIMEOUT_CARD,
        "-k",
        "slow",
    )
    assert out.code == 6 and out.error["code"] == "PAYMENT_UNKNOWN"
    oid = out.error["order_id"]
    assert orders.get_order(s, oid)["status"] == "PENDING"
    assert type_counts(db, ids["ga"]) == (0, 1)
    retry = cli(
        db,
        "purchase",
        "-i",
        f"{ids['ga']}:1",
        "--pay",
        "card",
        "--card",
        TIMEOUT_CARD,
        "-k",
        "slow",
    )
    assert retry.code == 0, retry.stderr
    assert retry.json["order"]["id"] == oid and retry.json["order"]["status"] == "PAID"
    assert retry.json["replayed"] is True
    assert charges(db, oid) == 1
    assert_healthy(s)


def test_unknown_outcome_settled_by_reconcile(shop):
    db, ids, s = shop
    out = cli(db, "purchase", "-i", f"{ids['ga']}:2", "--pay", "card", "--card", TIMEOUT_CARD)
    oid = out.error["order_id"]
    rep = cli(db, "reconcile", "--stale-after", "0")
    assert rep.code == 0
    assert rep.json["repaired"] == [
        {"order_id": oid, "from": "PENDING", "to": "PAID", "reason": "charge_captured"}
    ]
    assert orders.get_order(s, oid)["status"] == "PAID"
    assert cli(db, "reconcile", "--stale-after", "0").json["repaired"] == []
    assert_healthy(s)


def test_reconcile_respects_stale_after(shop):
    db, ids, s = shop
    out = cli(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", TIMEOUT_CARD)
    assert out.code == 6
    assert cli(db, "reconcile", "--stale-after", "3600").json["repaired"] == []
    assert orders.get_order(s, out.error["order_id"])["status"] == "PENDING"


# ---------------------------------------------------------------- create / pay / cancel


def test_create_then_pay_then_cancel_with_refund(shop):
    db, ids, s = shop
    created = cli(
        db, "order", "create", "-i", f"{ids['ga']}:2", "-i", f"{ids['vip']}:1", "--email", "c@d.org"
    )
    assert created.code == 0, created.stderr
    order = created.json["order"]
    assert order["status"] == "PENDING" and order["tickets"] == []
    assert order["hold_expires_at"] is not None
    assert type_counts(db, ids["ga"]) == (0, 2) and type_counts(db, ids["vip"]) == (0, 1)
    paid = cli(db, "order", "pay", str(order["id"]), "--pay", "card", "--card", OK_CARD)
    assert paid.code == 0, paid.stderr
    assert paid.json["order"]["status"] == "PAID" and len(paid.json["order"]["tickets"]) == 3
    assert type_counts(db, ids["ga"]) == (2, 0)
    again = cli(db, "order", "pay", str(order["id"]), "--pay", "cash")
    assert again.code == 4 and again.error["code"] == "INVALID_STATE"
    cancelled = cli(
        db, "--operator", "boss", "order", "cancel", str(order["id"]), "--reason", "customer asked"
    )
    assert cancelled.code == 0, cancelled.stderr
    final = cancelled.json["order"]
    assert final["status"] == "CANCELLED"
    assert all(t["status"] == "void" for t in final["tickets"])
    assert final["history"][-1] == {
        "from": "PAID",
        "to": "CANCELLED",
        "at": final["history"][-1]["at"],
        "operator": "boss",
        "reason": "customer asked",
    }
    assert type_counts(db, ids["ga"]) == (0, 0) and type_counts(db, ids["vip"]) == (0, 0)
    assert count(db, "SELECT count(*) FROM mockpay_charges WHERE status = 'refunded'") == 1
    assert_healthy(s)


def test_cancel_pending_releases_hold(shop):
    db, ids, s = shop
    oid = cli(db, "order", "create", "-i", f"{ids['ga']}:4").json["order"]["id"]
    out = cli(db, "order", "cancel", str(oid))
    assert out.code == 0 and out.json["order"]["status"] == "CANCELLED"
    assert type_counts(db, ids["ga"]) == (0, 0)
    assert_healthy(s)


@pytest.mark.parametrize("final", ["FAILED", "CANCELLED"])
def test_illegal_transitions_from_final_states(shop, final):
    db, ids, _ = shop
    if final == "FAILED":
        out = cli(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", DECLINED_CARD)
        oid = out.error["order_id"]
    else:
        oid = cli(db, "order", "create", "-i", f"{ids['ga']}:1").json["order"]["id"]
        assert cli(db, "order", "cancel", str(oid)).code == 0
    before = dump(db)
    for args in (["order", "cancel", str(oid)], ["order", "pay", str(oid), "--pay", "cash"]):
        out = cli(db, *args)
        assert out.code == 4 and out.error["code"] == "INVALID_STATE", args
    assert dump(db) == before


def test_paid_order_cannot_be_paid_or_cancelled_twice(shop):
    db, ids, s = shop
    oid = buy(s, [f"{ids['ga']}:1"]).order["id"]
    assert cli(db, "order", "cancel", str(oid)).code == 0
    out = cli(db, "order", "cancel", str(oid))
    assert out.code == 4 and out.error["code"] == "INVALID_STATE"


def test_expired_hold_cannot_be_paid_and_reconcile_cancels_it(shop):
    db, ids, s = shop
    oid = cli(db, "order", "create", "-i", f"{ids['ga']}:3", "--hold-minutes", "1").json["order"][
        "id"
    ]
    clock.set_offset(120)
    with pytest.raises(TicketHubError) as err:
        orders.pay_order(s, oid, pay="cash", card=None)
    assert err.value.code == ErrorCode.INVALID_STATE
    repaired = reconcile.reconcile(s, 0)
    assert repaired == [
        {"order_id": oid, "from": "PENDING", "to": "CANCELLED", "reason": "hold_expired"}
    ]
    assert orders.get_order(s, oid)["history"][-1]["reason"] == "hold_expired"
    assert type_counts(db, ids["ga"]) == (0, 0)
    assert reconcile.reconcile(s, 0) == []
    assert_healthy(s)


def test_purchase_of_a_type_releases_its_expired_holds(shop):
    _, ids, s = shop
    held = orders.create_order(
        s, orders.OrderRequest.parse(items=[f"{ids['ga']}:10"], hold_minutes=1, require_pay=False)
    ).order["id"]
    with pytest.raises(TicketHubError) as err:
        buy(s, [f"{ids['ga']}:1"])
    assert err.value.code == ErrorCode.SOLD_OUT
    clock.set_offset(61)
    assert buy(s, [f"{ids['ga']}:1"]).order["status"] == "PAID"
    assert orders.get_order(s, held)["status"] == "CANCELLED"
    assert_healthy(s)


def test_default_hold_is_configurable_per_database(shop):
    db, ids, s = shop
    assert cli(db, "config", "--hold-minutes", "2").json == {"config": {"hold_minutes": 2.0}}
    order = orders.create_order(
        s, orders.OrderRequest.parse(items=[f"{ids['ga']}:1"], require_pay=False)
    ).order
    expires = clock.to_us(clock.parse(order["hold_expires_at"]))
    created = clock.to_us(clock.parse(order["created_at"]))
    assert 119_000_000 <= expires - created <= 121_000_000


def test_sold_out_writes_nothing(shop):
    db, ids, _ = shop
    assert cli(db, "purchase", "-i", f"{ids['vip']}:5", "--pay", "cash").code == 0
    before = dump(db)
    out = cli(db, "purchase", "-i", f"{ids['vip']}:1", "--pay", "cash")
    assert out.code == 5 and out.error["code"] == "SOLD_OUT"
    assert dump(db) == before


def test_order_list_filters_and_show(shop):
    db, ids, s = shop
    buy(s, [f"{ids['ga']}:1"])
    orders.create_order(s, orders.OrderRequest.parse(items=[f"{ids['ga']}:1"], require_pay=False))
    buy(s, [f"{ids['other']}:1"])
    assert len(cli(db, "order", "list").json["orders"]) == 3
    assert len(cli(db, "order", "list", "--event", str(ids["event"])).json["orders"]) == 2
    pending = cli(db, "order", "list", "--status", "pending").json["orders"]
    assert [o["status"] for o in pending] == ["PENDING"]
    shown = cli(db, "order", "show", str(pending[0]["id"]))
    assert shown.json["order"]["id"] == pending[0]["id"]
    bad = cli(db, "order", "list", "--status", "LOST")
    assert bad.code == 2


def test_human_output_of_purchase_and_doctor(shop, tmp_path):
    db, ids, _ = shop
    from typer.testing import CliRunner

    from tickethub_cli.cli import app

    result = CliRunner().invoke(app, ["--db", db, "sell", "-i", f"{ids['ga']}:1", "--pay", "cash"])
    assert result.exit_code == 0
    assert "PAID" in result.stdout and "Tickets" in result.stdout
    result = CliRunner().invoke(app, ["--db", db, "doctor"])
    assert result.exit_code == 0 and "all invariants hold" in result.stdout


# ------------------------------------------------------------------------- bad input

BAD_INPUTS = [
    (["purchase", "-i", "{ga}:0", "--pay", "cash"], 2, "INVALID_INPUT"),
    (["purchase", "-i", "{ga}:-2", "--pay", "cash"], 2, "INVALID_INPUT"),
    (["purchase", "-i", "{ga}:two", "--pay", "cash"], 2, "INVALID_INPUT"),
    (["purchase", "-i", "{ga}:10000000000000000000000", "--pay", "cash"], 2, "INVALID_INPUT"),
    (["purchase", "-i", "{ga}:10^22", "--pay", "cash"], 2, "INVALID_INPUT"),
    (["purchase", "-i", "{ga}", "--pay", "cash"], 2, "INVALID_INPUT"),
    (["purchase", "-i", "999:1", "--pay", "cash"], 3, "NOT_FOUND"),
    (["purchase", "-i", "{ga}:1", "-i", "{other}:1", "--pay", "cash"], 2, "INVALID_INPUT"),
    (["purchase", "-i", "{ga}:11", "--pay", "cash"], 2, "INVALID_INPUT"),
    (["purchase", "-i", "{ga}:1", "--email", "not-an-email", "--pay", "cash"], 2, "INVALID_INPUT"),
    (["purchase", "-i", "{ga}:1", "--pay", "bitcoin"], 2, "INVALID_INPUT"),
    (["purchase", "-i", "{ga}:1", "--pay", "card", "--card", "1234"], 2, "INVALID_INPUT"),
    (
        ["purchase", "-i", "{ga}:1", "--pay", "card", "--card", "4242424242424241"],
        2,
        "INVALID_INPUT",
    ),
    (["purchase", "-i", "{ga}:1", "--pay", "card"], 2, "INVALID_INPUT"),
    (["purchase", "-i", "{ga}:1"], 2, "INVALID_INPUT"),
    (["purchase", "--pay", "cash"], 2, "USAGE"),
    (["purchase", "-i", "{ga}:1", "--pay", "cash", "--hold-minutes", "-1"], 2, "INVALID_INPUT"),
    (["order", "show", "424242"], 3, "NOT_FOUND"),
    (["order", "pay", "424242", "--pay", "cash"], 3, "NOT_FOUND"),
    (["order", "cancel", "424242"], 3, "NOT_FOUND"),
    (["order", "cancel", "abc"], 3, "NOT_FOUND"),
    (["reconcile", "--stale-after", "soon"], 2, "INVALID_INPUT"),
]


@pytest.mark.parametrize(("args", "code", "error"), BAD_INPUTS)
def test_bad_input_is_refused_cleanly(shop, args, code, error):
    db, ids, _ = shop
    args = [a.format(**ids) for a in args]
    before = dump(db)
    out = cli(db, *args)
    assert out.code == code, (args, out.stderr)
    assert out.stdout == ""
    assert out.error["code"] == error
    assert "Traceback" not in out.stderr
    assert dump(db) == before


# --------------------------------------------------------------------------- callbacks

SECRET = "whsec_test"


def send(db: str, tmp_path, body: dict, *, secret: str = SECRET, signature: str | None = None):
    payload = json.dumps(body).encode()
    path = tmp_path / f"cb-{body.get('id')}.json"
    path.write_bytes(payload)
    sig = signature if signature is not None else callbacks.sign(payload, secret)
    return cli(
        db,
        "payment",
        "callback",
        "--payload",
        str(path),
        "--signature",
        sig,
        env={"TICKETHUB_WEBHOOK_SECRET": SECRET},
    )


def test_callback_success_pays_pending_order_once(shop, tmp_path):
    db, ids, s = shop
    order = orders.create_order(
        s, orders.OrderRequest.parse(items=[f"{ids['ga']}:2"], require_pay=False)
    ).order
    body = {"id": "cb1", "order_id": order["id"], "status": "succeeded", "amount_minor": 4000}
    out = send(db, tmp_path, body)
    assert out.code == 0, out.stderr
    assert out.json["order"]["status"] == "PAID" and len(out.json["order"]["tickets"]) == 2
    before = dump(db)
    repeat = send(db, tmp_path, body)
    assert repeat.code == 0 and repeat.json["order"]["status"] == "PAID"
    assert dump(db) == before
    late_failure = send(db, tmp_path, {**body, "id": "cb2", "status": "failed"})
    assert late_failure.code == 0 and late_failure.json["order"]["status"] == "PAID"
    assert type_counts(db, ids["ga"]) == (2, 0)
    assert_healthy(s)


def test_callback_bad_signature_is_refused_and_recorded(shop, tmp_path):
    db, ids, s = shop
    oid = orders.create_order(
        s, orders.OrderRequest.parse(items=[f"{ids['ga']}:1"], require_pay=False)
    ).order["id"]
    body = {"id": "evil", "order_id": oid, "status": "succeeded", "amount_minor": 2000}
    out = send(db, tmp_path, body, signature="00" * 32)
    assert out.code == 2 and out.error["code"] == "SIGNATURE_INVALID"
    assert count(db, "SELECT count(*) FROM callbacks WHERE outcome = 'signature_invalid'") == 1
    assert orders.get_order(s, oid)["status"] == "PENDING"
    wrong_secret = send(db, tmp_path, body, secret="other")
    assert wrong_secret.code == 2


def test_callback_amount_mismatch_and_missing_secret(shop, tmp_path):
    db, ids, s = shop
    oid = orders.create_order(
        s, orders.OrderRequest.parse(items=[f"{ids['ga']}:1"], require_pay=False)
    ).order["id"]
    before = dump(db)
    out = send(db, tmp_path, {"id": "a", "order_id": oid, "status": "succeeded", "amount_minor": 1})
    assert out.code == 2 and out.error["code"] == "AMOUNT_MISMATCH"
    assert dump(db) == before
    payload = tmp_path / "p.json"
    payload.write_text("{}")
    no_secret = cli(
        db,
        "payment",
        "callback",
        "--payload",
        str(payload),
        "--signature",
        "ab",
        env={"TICKETHUB_WEBHOOK_SECRET": ""},
    )
    assert no_secret.code == 2 and no_secret.error["code"] == "INVALID_INPUT"
    missing = send(
        db, tmp_path, {"id": "b", "order_id": 9999, "status": "succeeded", "amount_minor": 1}
    )
    assert missing.code == 3


def test_late_success_after_cancellation_is_refunded_never_oversold(shop, tmp_path):
    db, ids, s = shop
    oid = orders.create_order(
        s, orders.OrderRequest.parse(items=[f"{ids['vip']}:5"], hold_minutes=1, require_pay=False)
    ).order["id"]
    clock.set_offset(120)  # the hold expires; the seats are sold to someone else
    assert buy(s, [f"{ids['vip']}:5"]).order["status"] == "PAID"
    out = send(
        db, tmp_path, {"id": "late", "order_id": oid, "status": "succeeded", "amount_minor": 25000}
    )
    assert out.code == 0, out.stderr
    assert out.json["order"]["status"] == "CANCELLED"
    assert type_counts(db, ids["vip"]) == (5, 0)
    assert (
        count(db, "SELECT count(*) FROM payments WHERE order_id = ? AND status = 'refunded'", oid)
        == 1
    )
    assert count(db, "SELECT count(*) FROM payments WHERE refund_state = 'requested'") == 0
    assert count(db, "SELECT count(*) FROM mockpay_charges WHERE status = 'refunded'") == 1
    assert_healthy(s)


def test_callback_failure_fails_pending_order(shop, tmp_path):
    db, ids, s = shop
    oid = orders.create_order(
        s, orders.OrderRequest.parse(items=[f"{ids['ga']}:1"], require_pay=False)
    ).order["id"]
    out = send(db, tmp_path, {"id": "f", "order_id": oid, "status": "failed", "amount_minor": 2000})
    assert out.code == 0 and out.json["order"]["status"] == "FAILED"
    assert type_counts(db, ids["ga"]) == (0, 0)
    assert_healthy(s)


# ----------------------------------------------------------------------------- doctor


def test_doctor_reports_broken_invariants(shop):
    db, ids, s = shop
    buy(s, [f"{ids['ga']}:2"])
    s.conn.execute("UPDATE ticket_types SET sold = 1 WHERE id = ?", (ids["ga"],))
    out = cli(db, "doctor")
    assert out.code == 9
    assert out.json["ok"] is False
    assert {p["check"] for p in out.json["problems"]} == {"sold_matches_tickets"}


def test_failure_callback_for_a_charge_the_provider_captured_is_stale(shop, tmp_path):
    """Regression (chaos run): a `failed` callback for a PENDING order whose charge had in
    fact been captured (unknown outcome) used to end it FAILED with the money kept."""
    db, ids, s = shop
    out = cli(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", TIMEOUT_CARD)
    oid = out.error["order_id"]
    res = send(
        db, tmp_path, {"id": "stale", "order_id": oid, "status": "failed", "amount_minor": 2000}
    )
    assert res.code == 0, res.stderr
    assert res.json["order"]["status"] == "PAID"
    assert count(db, "SELECT count(*) FROM mockpay_charges WHERE status = 'captured'") == 1
    assert_healthy(s)


def test_failure_callback_voids_so_a_slow_worker_cannot_charge_later(shop, tmp_path):
    db, ids, s = shop
    args = ["purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD, "-k", "slow"]
    assert proc(db, *args, env={"TICKETHUB_FAULT": "after_reserve"}).code == 137
    oid, ref = s.conn.execute("SELECT order_id, provider_ref FROM payments").fetchone()
    res = send(
        db, tmp_path, {"id": "f1", "order_id": oid, "status": "failed", "amount_minor": 2000}
    )
    assert res.json["order"]["status"] == "FAILED"
    late = s.provider.charge(ref, oid, 2000, "EUR", OK_CARD)
    assert late.status == "voided"
    assert proc(db, *args).code == 6  # the retry replays the failure, charges nothing
    assert count(db, "SELECT count(*) FROM mockpay_charges WHERE status = 'captured'") == 0
    assert_healthy(s)


def test_create_retry_replays_and_never_claims_a_payment(shop):
    db, ids, _ = shop
    args = ["order", "create", "-i", f"{ids['ga']}:2", "-k", "res-1"]
    first = cli(db, *args)
    assert first.code == 0 and first.json["replayed"] is False
    again = cli(db, *args)
    assert again.code == 0 and again.json["replayed"] is True
    assert again.json["order"]["id"] == first.json["order"]["id"]
    assert again.json["order"]["payment_state"] is None
    assert cli(db, "order", "create", "-i", f"{ids['ga']}:3", "-k", "res-1").code == 4
    assert type_counts(db, ids["ga"]) == (0, 2)


# -------------------------------------------------------------- group commit (batches)


def test_purchase_many_matches_one_by_one_semantics(shop):
    db, ids, s = shop
    first = buy(s, [f"{ids['vip']}:1"], idempotency_key="seen")
    reqs = [
        orders.OrderRequest.parse(items=[f"{ids['ga']}:2"], pay="cash", idempotency_key="g1"),
        orders.OrderRequest.parse(items=[f"{ids['vip']}:5"], pay="cash", idempotency_key="g2"),
        orders.OrderRequest.parse(
            items=[f"{ids['ga']}:1"], pay="card", card=DECLINED_CARD, idempotency_key="g3"
        ),
        orders.OrderRequest.parse(items=[f"{ids['vip']}:1"], pay="cash", idempotency_key="seen"),
        orders.OrderRequest.parse(
            items=[f"{ids['ga']}:1"], pay="card", card=TIMEOUT_CARD, idempotency_key="g5"
        ),
        orders.OrderRequest.parse(
            items=[f"{ids['vip']}:4"], pay="card", card=OK_CARD, idempotency_key="g6"
        ),
    ]
    out = orders.purchase_many(s, reqs)
    assert isinstance(out[0], orders.OrderResult) and out[0].order["status"] == "PAID"
    assert isinstance(out[1], TicketHubError) and out[1].code == ErrorCode.SOLD_OUT
    assert isinstance(out[2], TicketHubError) and out[2].code == ErrorCode.PAYMENT_DECLINED
    assert isinstance(out[3], orders.OrderResult) and out[3].replayed
    assert out[3].order["id"] == first.order["id"]
    assert isinstance(out[4], TicketHubError) and out[4].code == ErrorCode.PAYMENT_UNKNOWN
    assert isinstance(out[5], orders.OrderResult) and len(out[5].order["tickets"]) == 4
    assert type_counts(db, ids["vip"]) == (5, 0)
    assert type_counts(db, ids["ga"]) == (2, 1)  # the unknown-outcome order still holds
    again = orders.purchase_many(s, reqs)  # a re-run replays, never sells twice
    assert [isinstance(o, TicketHubError) for o in again] == [
        False,
        True,
        True,
        False,
        False,
        False,
    ]
    assert all(o.replayed for o in again if isinstance(o, orders.OrderResult))
    # "seen" + g1, g3 (declined), g5 (now PAID on resume), g6; g2 was never reserved
    assert count(db, "SELECT count(*) FROM orders") == 5
    assert count(db, "SELECT count(*) FROM mockpay_charges") == 3
    assert type_counts(db, ids["ga"]) == (3, 0)
    assert_healthy(s)


def test_order_list_for_an_unknown_event_is_not_found(shop):
    db, _, _ = shop
    out = cli(db, "order", "list", "--event", "99")
    assert out.code == 3 and out.error["code"] == "NOT_FOUND"


def test_order_pay_with_cash_and_a_card_is_bad_input_first(shop):
    db, ids, s = shop
    oid = buy(s, [f"{ids['ga']}:1"]).order["id"]  # already PAID: input is judged first
    out = cli(db, "order", "pay", str(oid), "--pay", "cash", "--card", OK_CARD)
    assert out.code == 2 and out.error["code"] == "INVALID_INPUT"


def test_overridden_failure_callback_says_so_in_the_history(shop, tmp_path):
    db, ids, _ = shop
    out = cli(db, "purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", TIMEOUT_CARD)
    oid = out.error["order_id"]
    res = send(
        db, tmp_path, {"id": "ovr", "order_id": oid, "status": "failed", "amount_minor": 2000}
    )
    assert (
        "failed, but the provider holds a captured charge"
        in (res.json["order"]["history"][-1]["reason"])
    )


def test_listing_every_order_and_a_page_of_them(shop):
    """`order list --all` (no limit) sent SQLite's `LIMIT -1`, which PostgreSQL refuses:
    DB_ERROR there."""
    db, ids, s = shop
    made = [buy(s, [f"{ids['ga']}:1"]).order["id"] for _ in range(3)]
    everything = orders.list_orders(s, limit=None)
    assert [o["id"] for o in everything["orders"]] == made[::-1]
    assert everything["total"] == 3 and everything["next_cursor"] is None
    page = orders.list_orders(s, limit=2)
    assert [o["id"] for o in page["orders"]] == made[:0:-1] and page["next_cursor"]
    out = cli(db, "order", "list", "--all")
    assert out.code == 0 and len(out.json["orders"]) == 3, out.stderr

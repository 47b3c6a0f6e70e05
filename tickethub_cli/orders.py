"""Orders: reserve, charge, issue — in brandur's atomic phases, safe to retry and to crash.

purchase = (a) one transaction: key check, validation, PENDING order, seats held;
           (b) the provider charge, outside any transaction, keyed by the order;
           (c) one transaction: PAID + seats sold + tickets issued, or FAILED + hold released.
A crash between phases leaves a PENDING order with a recovery point that a retry with the
same key, or `reconcile`, finishes without charging twice.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from . import audit, clock, faults, idempotency, inventory, money, payments, tickets
from . import validation as v
from .db import savepoint, snapshot, transaction
from .errors import ErrorCode, TicketHubError, invalid, invalid_state, not_found
from .order_requests import OrderRequest, parse_hold_minutes
from .session import Session

DEFAULT_HOLD_MINUTES = 15.0
STATUSES = ("PENDING", "PAID", "FAILED", "CANCELLED")


@dataclass(frozen=True)
class OrderResult:
    order: dict[str, Any]
    replayed: bool

    def to_json(self) -> dict[str, Any]:
        return {"order": self.order, "replayed": self.replayed}


# ---------------------------------------------------------------------------------- reading


def _order_row(conn: sqlite3.Connection, order_id: int) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        raise not_found("order", order_id)
    return row


def _lines(conn: sqlite3.Connection, order_id: int) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT ticket_type_id, quantity, unit_price_minor FROM order_lines WHERE order_id = ?"
        " ORDER BY ticket_type_id",
        (order_id,),
    ).fetchall()


def order_dict(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    oid = row["id"]
    return {
        "id": oid,
        "status": row["status"],
        "event_id": row["event_id"],
        "email": row["email"],
        "name": row["name"],
        "total_minor": row["total_minor"],
        "total": money.format_amount(row["total_minor"], row["currency"]),
        "currency": row["currency"],
        "idempotency_key": row["idempotency_key"],
        "pay_method": row["pay_method"],
        "payment_state": row["payment_state"],
        "hold_expires_at": clock.fmt(clock.from_us(row["hold_expires_us"]))
        if row["status"] == "PENDING"
        else None,
        "lines": [
            {
                "ticket_type_id": ln["ticket_type_id"],
                "quantity": ln["quantity"],
                "unit_price_minor": ln["unit_price_minor"],
            }
            for ln in _lines(conn, oid)
        ],
        "tickets": tickets.for_order(conn, oid),
        "history": audit.history(conn, "order", oid),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def get_order(s: Session, order_id: object) -> dict[str, Any]:
    oid = v.parse_id(order_id, "order")
    with snapshot(s.conn) as c:
        return order_dict(c, _order_row(c, oid))


def list_orders(
    s: Session, *, event_id: object | None = None, status: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    where, args = [], []
    if event_id is not None:
        eid = v.parse_id(event_id, "event")
        if s.conn.execute("SELECT 1 FROM events WHERE id = ?", (eid,)).fetchone() is None:
            raise not_found("event", eid)
        where.append("o.event_id = ?")
        args.append(eid)
    if status is not None:
        status = status.strip().upper()
        if status not in STATUSES:
            raise invalid(f"status must be one of {', '.join(STATUSES)}")
        where.append("o.status = ?")
        args.append(status)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = s.conn.execute(
        "SELECT o.*, (SELECT count(*) FROM tickets t WHERE t.order_id = o.id) AS ticket_count,"
        " (SELECT coalesce(sum(quantity), 0) FROM order_lines l WHERE l.order_id = o.id) AS seats"
        f" FROM orders o {clause} ORDER BY o.id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [
        {
            "id": r["id"],
            "status": r["status"],
            "event_id": r["event_id"],
            "email": r["email"],
            "name": r["name"],
            "total_minor": r["total_minor"],
            "total": money.format_amount(r["total_minor"], r["currency"]),
            "currency": r["currency"],
            "idempotency_key": r["idempotency_key"],
            "seats": r["seats"],
            "ticket_count": r["ticket_count"],
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
        }
        for r in rows
    ]


# ------------------------------------------------------------------------- state transitions


def _set_status(
    conn: sqlite3.Connection,
    operator: str,
    row: sqlite3.Row,
    to: str,
    reason: str | None,
    *,
    pay_method: str | None = None,
) -> None:
    cur = conn.execute(
        "UPDATE orders SET status = ?, payment_state = NULL, pay_method = coalesce(?, pay_method),"
        " updated_at = ? WHERE id = ? AND status = ?",
        (to, pay_method, clock.now_text(), row["id"], row["status"]),
    )
    if cur.rowcount != 1:
        raise inventory.CounterDrift(f"order {row['id']} changed under a write lock")
    audit.record(
        conn,
        operator,
        "order",
        row["id"],
        "status",
        from_state=row["status"],
        to_state=to,
        reason=reason,
    )


def mark_paid(
    conn: sqlite3.Connection,
    operator: str,
    row: sqlite3.Row,
    *,
    method: str,
    reason: str | None = None,
) -> None:
    """PENDING → PAID: held seats become sold and tickets are issued, all in this transaction."""
    lines = _lines(conn, row["id"])
    for ln in lines:
        inventory.sell(conn, ln["ticket_type_id"], ln["quantity"])
    faults.point("before_issue")
    tickets.issue(conn, row["id"], row["event_id"], lines)
    _set_status(conn, operator, row, "PAID", reason, pay_method=method)


def release_pending(
    conn: sqlite3.Connection, operator: str, row: sqlite3.Row, to: str, reason: str
) -> None:
    """PENDING → FAILED or CANCELLED: the hold goes back to the pool."""
    for ln in _lines(conn, row["id"]):
        inventory.release(conn, ln["ticket_type_id"], ln["quantity"])
    _set_status(conn, operator, row, to, reason)


def expire_holds(
    conn: sqlite3.Connection, operator: str, type_ids: list[int] | None = None
) -> list[int]:
    """End every PENDING order whose hold ran out with no payment in flight."""
    sql = (
        "SELECT * FROM orders WHERE status = 'PENDING' AND payment_state IS NULL"
        " AND hold_expires_us <= ?"
    )
    args: list[Any] = [clock.now_us()]
    if type_ids:
        marks = ",".join("?" * len(type_ids))
        # correlated, so it runs only for the few expired orders, not over every line sold
        sql += (
            " AND EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = orders.id"
            f" AND l.ticket_type_id IN ({marks}))"
        )
        args.extend(type_ids)
    expired = conn.execute(sql, args).fetchall()
    for row in expired:
        release_pending(conn, operator, row, "CANCELLED", "hold_expired")
    return [row["id"] for row in expired]


# ------------------------------------------------------------------------------ the flow


def _hold_minutes(conn: sqlite3.Connection, requested: float | None) -> float:
    if requested is not None:
        return requested
    row = conn.execute("SELECT value FROM meta WHERE key = 'hold_minutes'").fetchone()
    return float(row["value"]) if row else DEFAULT_HOLD_MINUTES


def _reserve(s: Session, req: OrderRequest, key: str, fp: str, *, op: str) -> int:
    """Phase (a), inside the caller's transaction: validate against the inventory and hold."""
    conn = s.conn
    ids = [i.ticket_type_id for i in req.items]
    marks = ",".join("?" * len(ids))
    types = {
        r["id"]: r
        for r in conn.execute(
            "SELECT t.id, t.event_id, t.name, t.price_minor, t.max_per_order, e.currency"
            f" FROM ticket_types t JOIN events e ON e.id = t.event_id WHERE t.id IN ({marks})",
            ids,
        )
    }
    for tid in ids:
        if tid not in types:
            raise not_found("ticket type", tid)
    event_ids = sorted({t["event_id"] for t in types.values()})
    if len(event_ids) > 1:
        raise invalid(
            f"items belong to different events ({', '.join(map(str, event_ids))});"
            " one order is for one event"
        )
    for item in req.items:
        t = types[item.ticket_type_id]
        if item.quantity > t["max_per_order"]:
            raise invalid(
                f"quantity {item.quantity} of {t['name']!r} (type {t['id']}) is above its"
                f" limit of {t['max_per_order']} per order"
            )
    expire_holds(conn, s.operator, ids)
    for item in req.items:
        if not inventory.hold(conn, item.ticket_type_id, item.quantity):
            left = conn.execute(
                "SELECT capacity - sold - held FROM ticket_types WHERE id = ?",
                (item.ticket_type_id,),
            ).fetchone()[0]
            raise TicketHubError(
                ErrorCode.SOLD_OUT,
                f"not enough tickets of {types[item.ticket_type_id]['name']!r}"
                f" (type {item.ticket_type_id}): {left} left, {item.quantity} asked",
                details={"ticket_type_id": item.ticket_type_id, "available": left},
            )
    currency = types[ids[0]]["currency"]
    total = sum(types[i.ticket_type_id]["price_minor"] * i.quantity for i in req.items)
    now = clock.now_text()
    expires = clock.now_us() + int(_hold_minutes(conn, req.hold_minutes) * 60_000_000)
    order_id = conn.execute(
        "INSERT INTO orders (event_id, status, email, name, currency, total_minor,"
        " idempotency_key, pay_method, payment_state, hold_expires_us, created_at, updated_at)"
        " VALUES (?, 'PENDING', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event_ids[0],
            req.email,
            req.name,
            currency,
            total,
            key,
            req.pay,
            "charging" if op == "purchase" else None,
            expires,
            now,
            now,
        ),
    ).lastrowid
    assert order_id is not None
    conn.executemany(
        "INSERT INTO order_lines (order_id, ticket_type_id, quantity, unit_price_minor)"
        " VALUES (?, ?, ?, ?)",
        [
            (order_id, i.ticket_type_id, i.quantity, types[i.ticket_type_id]["price_minor"])
            for i in req.items
        ],
    )
    audit.record(conn, s.operator, "order", order_id, "create", to_state="PENDING", reason=op)
    idempotency.insert(conn, key, fp, order_id, finished=(op == "create"))
    return order_id


def _replay(s: Session, rec: idempotency.KeyRecord) -> OrderResult:
    assert rec.order_id is not None
    if rec.result_code:
        raise TicketHubError(
            ErrorCode(rec.result_code), rec.result_message or rec.result_code, order_id=rec.order_id
        )
    return OrderResult(get_order(s, rec.order_id), True)


def _claim_existing(s: Session, rec: idempotency.KeyRecord, fp: str) -> Literal["replay", "resume"]:
    """Inside phase (a)'s transaction: what to do with a key we have seen before."""
    if rec.fingerprint != fp:
        raise TicketHubError(
            ErrorCode.IDEMPOTENCY_MISMATCH,
            f"idempotency key {rec.key!r} was used for a different request",
            order_id=rec.order_id,
            hint="use a new key for a new request",
        )
    if rec.finished:
        return "replay"
    assert rec.order_id is not None
    row = _order_row(s.conn, rec.order_id)
    if row["status"] != "PENDING":  # finished by reconcile or a callback meanwhile
        _finish_key_from_order(s.conn, rec.key, row)
        return "replay"
    if idempotency.holder_alive(rec, clock.now_us()):
        raise TicketHubError(
            ErrorCode.IN_PROGRESS,
            f"order {rec.order_id} for key {rec.key!r} is still being processed",
            order_id=rec.order_id,
            hint="retry in a moment",
        )
    idempotency.claim(s.conn, rec.key)
    s.conn.execute(
        "UPDATE orders SET payment_state = 'charging', updated_at = ? WHERE id = ?",
        (clock.now_text(), rec.order_id),
    )
    return "resume"


def _finish_key_from_order(conn: sqlite3.Connection, key: str, row: sqlite3.Row) -> None:
    if row["status"] == "FAILED":
        idempotency.finish(
            conn, key, ErrorCode.PAYMENT_DECLINED, f"payment for order {row['id']} failed"
        )
    else:
        idempotency.finish(conn, key)


@dataclass
class _Plan:
    """What phase (a) decided for one purchase request."""

    req: OrderRequest
    key: str
    order_id: int | None = None
    replayed: bool = False
    replay: idempotency.KeyRecord | None = None


def _begin_purchase(s: Session, req: OrderRequest) -> _Plan:
    """Phase (a), inside the caller's transaction: a new reservation, a replay of a finished
    key, or the resumption of a key whose worker died."""
    if req.pay is None:
        raise invalid("--pay is required: card (with --card NUMBER) or cash")
    key = req.idempotency_key or idempotency.generate_key()
    fp = req.fingerprint("purchase")
    rec = idempotency.get(s.conn, key)
    if rec is None:
        return _Plan(req, key, _reserve(s, req, key, fp, op="purchase"))
    if _claim_existing(s, rec, fp) == "replay":
        return _Plan(req, key, rec.order_id, True, idempotency.get(s.conn, key))
    return _Plan(req, key, rec.order_id, True)


def purchase(s: Session, req: OrderRequest) -> OrderResult:
    """Reserve, charge and issue in one call; safe to retry with the same key."""
    with transaction(s.conn):
        plan = _begin_purchase(s, req)
    if plan.replay is not None:
        return _replay(s, plan.replay)
    faults.point("after_reserve")
    return _complete(s, plan)


def purchase_many(s: Session, reqs: list[OrderRequest]) -> list[OrderResult | TicketHubError]:
    """Purchases with group commit, for batches: every request's phase (a) shares one
    transaction and every phase (c) another, each request in its own savepoint so a refusal
    rolls back alone. Each result is final (committed) when returned; a crash leaves every
    request at its recovery point, exactly as `purchase` would. Keys must be distinct."""
    outcomes: list[OrderResult | TicketHubError | None] = [None] * len(reqs)
    plans: dict[int, _Plan] = {}
    with transaction(s.conn) as c:
        for i, req in enumerate(reqs):
            try:
                with savepoint(c):
                    plans[i] = _begin_purchase(s, req)
            except TicketHubError as err:
                outcomes[i] = err
    live = {i: p for i, p in plans.items() if p.replay is None}
    if live:
        faults.point("after_reserve")
    charges = {i: _charge(s, _order_row(s.conn, p.order_id), p.req) for i, p in live.items()}
    if live:
        faults.point("after_charge")
    settled = {}
    if live:
        with transaction(s.conn) as c:
            for i, p in live.items():
                settled[i] = _settle_in_tx(s, p, charges[i])
    for i, p in plans.items():
        try:
            if p.replay is not None:
                outcomes[i] = _replay(s, p.replay)
            else:
                outcomes[i] = _finish(s, p, charges[i], *settled[i])
        except TicketHubError as err:
            outcomes[i] = err
    return [o for o in outcomes if o is not None]


def create_order(s: Session, req: OrderRequest) -> OrderResult:
    """Reserve seats as a PENDING order (no charge); pay later with `pay_order`. A retry with
    the same key returns that order as it stands now."""
    key = req.idempotency_key or idempotency.generate_key()
    fp = req.fingerprint("create")
    with transaction(s.conn):
        rec = idempotency.get(s.conn, key)
        if rec is None:
            order_id = _reserve(s, req, key, fp, op="create")
        elif rec.fingerprint != fp:
            raise TicketHubError(
                ErrorCode.IDEMPOTENCY_MISMATCH,
                f"idempotency key {key!r} was used for a different request",
                order_id=rec.order_id,
                hint="use a new key for a new request",
            )
    if rec is not None:
        assert rec.order_id is not None
        return OrderResult(get_order(s, rec.order_id), True)
    return OrderResult(get_order(s, order_id), False)


def pay_order(s: Session, order_id: object, *, pay: str | None, card: str | None) -> OrderResult:
    """Charge a PENDING order and issue its tickets."""
    oid = v.parse_id(order_id, "order")
    if pay not in ("card", "cash"):
        raise invalid("--pay must be card (with --card NUMBER) or cash")
    if pay == "cash" and card:
        raise invalid("--card goes with --pay card")
    card_digits = v.card_number(card) if pay == "card" else None
    with transaction(s.conn) as c:
        row = _order_row(c, oid)
        if row["status"] != "PENDING":
            raise invalid_state(
                f"order {oid} is {row['status']}; only a PENDING order can be paid", order_id=oid
            )
        rec = idempotency.for_order(c, oid)
        assert rec is not None
        if row["payment_state"] is None and row["hold_expires_us"] <= clock.now_us():
            raise invalid_state(f"the hold of order {oid} has expired", order_id=oid)
        if idempotency.holder_alive(rec, clock.now_us()):
            raise TicketHubError(
                ErrorCode.IN_PROGRESS, f"order {oid} is being paid right now", order_id=oid
            )
        idempotency.claim(c, rec.key)
        c.execute(
            "UPDATE orders SET payment_state = 'charging', pay_method = ?, updated_at = ?"
            " WHERE id = ?",
            (pay, clock.now_text(), oid),
        )
    payment = OrderRequest.model_construct(items=(), pay=pay, card=card_digits)
    return _complete(s, _Plan(payment, rec.key, oid))


def _charge(s: Session, row: sqlite3.Row, req: OrderRequest) -> payments.ChargeResult:
    if req.pay == "cash":
        return payments.ChargeResult("captured", None, "cash taken by the operator")
    if req.card is None:  # resumed without a card (cannot happen through the CLI): ask only
        return s.provider.lookup(row["id"]) or payments.ChargeResult("unknown")
    return s.provider.charge(row["id"], row["total_minor"], req.card)


def _complete(s: Session, plan: _Plan) -> OrderResult:
    """Phases (b) and (c): charge outside any transaction, then settle the order."""
    assert plan.order_id is not None
    result = _charge(s, _order_row(s.conn, plan.order_id), plan.req)
    faults.point("after_charge")
    with transaction(s.conn):
        settled = _settle_in_tx(s, plan, result)
    return _finish(s, plan, result, *settled)


def _settle_in_tx(
    s: Session, plan: _Plan, result: payments.ChargeResult
) -> tuple[dict[str, Any], bool, tuple[str, str] | None]:
    """Phase (c) inside the caller's transaction: (order, refund needed, final failure)."""
    c, order_id, key = s.conn, plan.order_id, plan.key
    assert order_id is not None and plan.req.pay is not None
    refund = False
    failure: tuple[str, str] | None = None
    row = _order_row(c, order_id)
    if row["status"] != "PENDING":
        # settled meanwhile (reconcile, callback): never take money for a dead order
        refund = result.status == "captured" and plan.req.pay == "card"
        refund = refund and row["status"] != "PAID"
        _finish_key_from_order(c, key, row)
        rec = idempotency.get(c, key)
        if rec is not None and rec.result_code:
            failure = (rec.result_code, rec.result_message or rec.result_code)
    else:
        failure = _settle(s, row, key, plan.req.pay, result)
    return order_dict(c, _order_row(c, order_id)), refund, failure


def _finish(
    s: Session,
    plan: _Plan,
    result: payments.ChargeResult,
    order: dict[str, Any],
    refund: bool,
    failure: tuple[str, str] | None,
) -> OrderResult:
    """After phase (c) committed: refund a charge for a dead order, then answer."""
    order_id, key = order["id"], plan.key
    if refund:
        refund_order_payment(s, order_id, order["total_minor"], "charge after order ended")
        order = get_order(s, order_id)
    if result.status == "unknown" and failure is None:
        raise TicketHubError(
            ErrorCode.PAYMENT_UNKNOWN,
            f"payment outcome for order {order_id} is unknown",
            order_id=order_id,
            hint=f"retry with --idempotency-key {key}, or run `tickethub reconcile` later",
            details={"idempotency_key": key},
        )
    if failure is not None:
        raise TicketHubError(
            ErrorCode(failure[0]), failure[1], order_id=order_id, details={"idempotency_key": key}
        )
    return OrderResult(order, plan.replayed)


def _settle(
    s: Session, row: sqlite3.Row, key: str, method: str, result: payments.ChargeResult
) -> tuple[str, str] | None:
    """Phase (c) for a PENDING order, inside its transaction; returns (code, message) of a
    final failure, None otherwise."""
    c, order_id = s.conn, row["id"]
    if result.status != "unknown":
        payments.record(
            c,
            order_id,
            kind="charge",
            method=method,
            status=result.status,
            amount_minor=row["total_minor"],
            reference=result.reference,
        )
    if result.status == "captured":
        mark_paid(c, s.operator, row, method=method)
        idempotency.finish(c, key)
        return None
    if result.status == "unknown":
        c.execute(
            "UPDATE orders SET payment_state = 'unknown', updated_at = ? WHERE id = ?",
            (clock.now_text(), order_id),
        )
        audit.record(c, s.operator, "order", order_id, "payment_unknown")
        idempotency.release(c, key)
        return None
    message = f"payment for order {order_id} declined: {result.message}"
    release_pending(c, s.operator, row, "FAILED", result.message or "declined")
    idempotency.finish(c, key, ErrorCode.PAYMENT_DECLINED, message)
    return (ErrorCode.PAYMENT_DECLINED, message)


def refund_order_payment(s: Session, order_id: int, amount: int, why: str) -> None:
    """Give money back through the provider (outside any transaction), then record it."""
    result = s.provider.refund(order_id, amount)
    with transaction(s.conn) as c:
        payments.record(
            c,
            order_id,
            kind="refund",
            method="card",
            status=result.status,
            amount_minor=amount,
            reference=result.reference,
        )
        audit.record(c, s.operator, "order", order_id, "refund", reason=why)


# ------------------------------------------------------------------------------ cancelling


def cancel_order(s: Session, order_id: object, *, reason: str | None = None) -> dict[str, Any]:
    """PENDING → CANCELLED (hold released); PAID → refund → CANCELLED (tickets void)."""
    oid = v.parse_id(order_id, "order")
    why = v.optional_text(reason, "reason") or "cancelled by operator"
    with transaction(s.conn) as c:
        row = _order_row(c, oid)
        if row["status"] == "PENDING":
            if row["payment_state"] is not None:
                raise TicketHubError(
                    ErrorCode.IN_PROGRESS,
                    f"a payment for order {oid} is in flight",
                    order_id=oid,
                    hint="wait for it, or run `tickethub reconcile` to settle it first",
                )
            release_pending(c, s.operator, row, "CANCELLED", why)
            rec = idempotency.for_order(c, oid)
            if rec is not None and not rec.finished:
                idempotency.finish(c, rec.key)
            return order_dict(c, _order_row(c, oid))
        if row["status"] != "PAID":
            raise invalid_state(
                f"order {oid} is {row['status']}; only PENDING or PAID orders can be cancelled",
                order_id=oid,
            )
        if row["cancel_requested_reason"] is None:
            c.execute(
                "UPDATE orders SET cancel_requested_reason = ?, updated_at = ? WHERE id = ?",
                (why, clock.now_text(), oid),
            )
            audit.record(c, s.operator, "order", oid, "refund_requested", reason=why)
    finish_paid_cancellation(s, oid)
    return get_order(s, oid)


def finish_paid_cancellation(s: Session, oid: int) -> bool:
    """Refund (idempotent at the provider), then void tickets and release seats. Also run by
    reconcile for a cancellation a crash interrupted."""
    row = _order_row(s.conn, oid)
    if row["status"] != "PAID" or row["cancel_requested_reason"] is None:
        return False
    method = row["pay_method"] or "card"
    if method == "cash":
        result = payments.ChargeResult("refunded", None, "cash handed back by the operator")
    else:
        result = s.provider.refund(oid, row["total_minor"])
    with transaction(s.conn) as c:
        row = _order_row(c, oid)
        if row["status"] != "PAID":
            return False
        for type_id, count in tickets.void_for_order(c, oid).items():
            inventory.unsell(c, type_id, count)
        payments.record(
            c,
            oid,
            kind="refund",
            method=method,
            status=result.status,
            amount_minor=row["total_minor"],
            reference=result.reference,
        )
        _set_status(c, s.operator, row, "CANCELLED", row["cancel_requested_reason"])
    return True


def set_default_hold_minutes(s: Session, minutes: object) -> float:
    value = parse_hold_minutes(minutes)
    if value is None:
        raise invalid("give the hold in minutes")
    with transaction(s.conn) as c:
        c.execute(
            "INSERT INTO meta (key, value) VALUES ('hold_minutes', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(value),),
        )
        audit.record(c, s.operator, "config", None, "hold_minutes", data={"minutes": value})
    return value

"""Orders: reserve, charge, issue — in brandur's atomic phases, safe to retry and to crash.

purchase = (a) one transaction: key check, validation, PENDING order, seats held, and a
               payment attempt (pending) whose id is the charge's key at the provider;
           (b) the provider charge, outside any transaction, keyed by that attempt;
           (c) one transaction: PAID + seats sold + tickets issued, or FAILED + hold released.
A crash between phases leaves a PENDING order with an open attempt that a retry with the
same key, or `reconcile`, finishes without charging twice.

Every outcome of an attempt, whoever learns it (the buyer's process, reconcile, a callback, a
cancel or a payment asking the provider first), goes through `apply_outcome`: a capture pays a
PENDING order or is refunded once; a failure fails the order or leaves it to its caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from . import audit, clock, faults, idempotency, inventory, money, payments, tickets
from . import validation as v
from .db import Connection, DatabaseError, Row, savepoint, snapshot, transaction, translate
from .errors import ErrorCode, TicketHubError, invalid, invalid_state, not_found, ref
from .idempotency import Lease
from .order_requests import (
    CARD_WITHOUT_CARD_PAY,
    PAY_REQUIRED,
    OrderRequest,
    normal_pay,
    parse_hold_minutes,
)
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


def order_row(conn: Connection, order_id: int) -> Row:
    row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        raise not_found("order", order_id)
    return row


def _lines(conn: Connection, order_id: int) -> list[Row]:
    return conn.execute(
        "SELECT ticket_type_id, quantity, unit_price_minor FROM order_lines WHERE order_id = ?"
        " ORDER BY ticket_type_id",
        (order_id,),
    ).fetchall()


def _named_lines(conn: Connection, order_id: int) -> list[Row]:
    """The lines with their type's name, and the event's name and zone riding on each (one
    query: what people read beside the ids)."""
    return conn.execute(
        "SELECT l.ticket_type_id, l.quantity, l.unit_price_minor, t.name AS type_name,"
        " e.name AS event_name, e.timezone FROM order_lines l"
        " JOIN ticket_types t ON t.id = l.ticket_type_id JOIN events e ON e.id = t.event_id"
        " WHERE l.order_id = ? ORDER BY l.ticket_type_id",
        (order_id,),
    ).fetchall()


def order_dict(conn: Connection, row: Row) -> dict[str, Any]:
    oid = row["id"]
    paid = payments.for_order(conn, oid)
    lines = _named_lines(conn, oid)
    if lines:
        event_name, zone = lines[0]["event_name"], lines[0]["timezone"]
    else:  # every order has lines; this only guards a damaged database
        ev = conn.execute(
            "SELECT name, timezone FROM events WHERE id = ?", (row["event_id"],)
        ).fetchone()
        event_name, zone = (ev["name"], ev["timezone"]) if ev else (None, "UTC")
    type_names = {ln["ticket_type_id"]: ln["type_name"] for ln in lines}
    issued = tickets.for_order(conn, oid)
    for t in issued:
        t["ticket_type_name"] = type_names.get(t["ticket_type_id"])
    return {
        "id": oid,
        "status": row["status"],
        "event_id": row["event_id"],
        "event_name": event_name,
        "timezone": zone,
        "email": row["email"],
        "name": row["name"],
        "total_minor": row["total_minor"],
        "total": money.format_amount(row["total_minor"], row["currency"]),
        "currency": row["currency"],
        "idempotency_key": row["idempotency_key"],
        "pay_method": row["pay_method"],
        "payment_state": _payment_state(paid),
        "hold_expires_at": clock.fmt(clock.from_us(row["hold_expires_us"]))
        if row["status"] == "PENDING"
        else None,
        "lines": [
            {
                "ticket_type_id": ln["ticket_type_id"],
                "ticket_type_name": ln["type_name"],
                "quantity": ln["quantity"],
                "unit_price_minor": ln["unit_price_minor"],
                "unit_price": money.format_amount(ln["unit_price_minor"], row["currency"]),
            }
            for ln in lines
        ],
        "tickets": issued,
        "payments": [payments.payment_dict(p) for p in paid],
        "history": audit.history(conn, "order", oid),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _payment_state(attempts: list[Row]) -> str | None:
    """The open attempt's state in the words of version 1: charging, unknown or None."""
    for p in attempts:
        if p["status"] in payments.OPEN:
            return "unknown" if p["status"] == "unknown" else "charging"
    return None


def get_order(s: Session, order_id: object) -> dict[str, Any]:
    oid = v.parse_id(order_id, "order")
    with snapshot(s.conn) as c:
        return order_dict(c, order_row(c, oid))


DEFAULT_PAGE = 100


def list_orders(
    s: Session,
    *,
    event_id: object | None = None,
    status: str | None = None,
    limit: int | None = DEFAULT_PAGE,
    cursor: object | None = None,
) -> dict[str, Any]:
    """Orders newest first, a page at a time: `orders`, `total` (all that match) and
    `next_cursor` (pass it back for the next page; None when nothing is left). A list never
    stops silently. `limit=None` gives every match."""
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
    if limit is not None and not 1 <= limit <= 100_000:
        raise invalid(
            f"{ref('limit')} must be between 1 and 100000 (or give {ref('all')})", field="limit"
        )
    with snapshot(s.conn) as c:
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total = c.execute(f"SELECT count(*) FROM orders o {clause}", args).fetchone()[0]
        if cursor is not None:
            where.append("o.id < ?")
            args.append(_cursor(cursor))
            clause = f"WHERE {' AND '.join(where)}"
        # no LIMIT at all for every match: PostgreSQL refuses SQLite's `LIMIT -1`
        page = "" if limit is None else f" LIMIT {int(limit) + 1}"
        rows = c.execute(
            "SELECT o.*, e.name AS event_name, e.timezone,"
            " (SELECT count(*) FROM tickets t WHERE t.order_id = o.id) AS ticket_count,"
            " (SELECT coalesce(sum(quantity), 0) FROM order_lines l WHERE l.order_id = o.id)"
            f" AS seats FROM orders o JOIN events e ON e.id = o.event_id {clause}"
            f" ORDER BY o.id DESC{page}",
            args,
        ).fetchall()
    more = limit is not None and len(rows) > limit
    rows = rows[:limit] if more else rows
    return {
        "orders": [_summary(r) for r in rows],
        "total": total,
        "next_cursor": str(rows[-1]["id"]) if more else None,
    }


def _cursor(value: object) -> int:
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise invalid(
            f"{ref('cursor')} {text[:30]!r} is not one this command gave out", field="cursor"
        )
    return int(text)


def _summary(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "status": r["status"],
        "event_id": r["event_id"],
        "event_name": r["event_name"],
        "timezone": r["timezone"],
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


# ------------------------------------------------------------------------- state transitions


def _set_status(
    conn: Connection,
    operator: str,
    row: Row,
    to: str,
    reason: str | None,
    *,
    pay_method: str | None = None,
) -> None:
    cur = conn.execute(
        "UPDATE orders SET status = ?, pay_method = coalesce(?, pay_method), updated_at = ?"
        " WHERE id = ? AND status = ?",
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
    conn: Connection,
    operator: str,
    row: Row,
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


def release_pending(conn: Connection, operator: str, row: Row, to: str, reason: str) -> None:
    """PENDING → FAILED or CANCELLED: the hold goes back to the pool."""
    for ln in _lines(conn, row["id"]):
        inventory.release(conn, ln["ticket_type_id"], ln["quantity"])
    _set_status(conn, operator, row, to, reason)
    finish_key(conn, row["id"])


def hold_expired(conn: Connection, row: Row) -> bool:
    """A PENDING order's hold has run out, and no payment of it is in flight."""
    return (
        row["status"] == "PENDING"
        and row["hold_expires_us"] <= clock.now_us()
        and payments.open_for(conn, row["id"]) is None
    )


def expire_holds(conn: Connection, operator: str, type_ids: list[int] | None = None) -> list[int]:
    """End every PENDING order whose hold ran out with no payment in flight."""
    sql = (
        "SELECT * FROM orders WHERE status = 'PENDING' AND hold_expires_us <= ?"
        " AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = orders.id"
        " AND p.status IN ('pending', 'unknown'))"
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


def finish_key(conn: Connection, order_id: int) -> None:
    """Once an order is final, its key replays that end (an error for a FAILED order)."""
    row = conn.execute(
        "SELECT o.status, k.key FROM orders o JOIN idempotency_keys k ON k.key = o.idempotency_key"
        " WHERE o.id = ? AND k.recovery_point <> 'finished'",
        (order_id,),
    ).fetchone()
    if row is None:
        return
    status, key = row
    if status == "FAILED":
        idempotency.finish(
            conn, key, ErrorCode.PAYMENT_DECLINED, f"payment for order {order_id} failed"
        )
    elif status != "PENDING":
        idempotency.finish(conn, key)


Mode = Literal["settle", "pay", "cancel"]


def apply_outcome(s: Session, payment: Any, outcome: str, *, mode: Mode, reason: str) -> bool:
    """Inside the caller's transaction: an open attempt's outcome is known.

    captured: pays its PENDING order (mode settle or pay); otherwise the money is not owed
    (the order ended, was paid by another payment, or is being cancelled) and a refund is
    asked for, once. unknown: the attempt stays open, the order keeps its seats.
    declined / voided: the attempt is final; in mode settle the order FAILS and its hold is
    released; in the other modes the caller goes on (pays another way, or cancels).
    Refunds asked for here are run by the caller after the commit (`run_refunds`).
    `payment` needs id, order_id and method. False when someone settled it first: what
    stands is theirs, and nothing was changed here."""
    c = s.conn
    taken_back = outcome == "refunded"  # taken, and already given back at the provider
    status = "captured" if taken_back else outcome
    if status not in ("captured", "unknown", "declined"):
        status = "voided"
    if not payments.settle(c, payment, status):
        return False
    oid = payment["order_id"]
    row = order_row(c, oid)
    if status == "unknown":
        audit.record(c, s.operator, "order", oid, "payment_unknown", reason=reason)
        return True
    if status == "captured":
        if row["status"] == "PENDING" and mode != "cancel" and not taken_back:
            mark_paid(c, s.operator, row, method=payment["method"], reason=reason)
            idempotency.finish(c, row["idempotency_key"])  # PAID: the key replays the order
            return True
        why = (
            "the provider had refunded it already"
            if taken_back
            else "order is being cancelled"
            if mode == "cancel"
            else f"order was already {row['status']} when this payment was captured"
        )
        payments.request_refund(c, s.operator, payments.get(c, payment["id"]), why)
        if taken_back and mode == "settle" and row["status"] == "PENDING":
            release_pending(c, s.operator, row, "FAILED", why)
        finish_key(c, oid)
        return True
    audit.record(
        c,
        s.operator,
        "order",
        oid,
        "payment_" + status,
        reason=reason,
        data={"payment_id": payment["id"]},
    )
    if mode == "settle" and row["status"] == "PENDING":
        release_pending(c, s.operator, row, "FAILED", reason)
    return True


def run_refunds(s: Session, order_id: int | None = None) -> list[int]:
    """Give back every refund asked for (of one order, or all); safe to run again."""
    ids = payments.requested_refunds(s.conn, order_id)
    return payments.run_refunds(s.conn, s.provider, s.operator, ids) if ids else []


# ------------------------------------------------------------------------------ the flow


def _hold_minutes(conn: Connection, requested: float | None) -> float:
    if requested is not None:
        return requested
    row = conn.execute("SELECT value FROM meta WHERE key = 'hold_minutes'").fetchone()
    return float(row["value"]) if row else DEFAULT_HOLD_MINUTES


def default_hold_minutes(s: Session) -> float:
    return _hold_minutes(s.conn, None)


def _reserve(
    s: Session, req: OrderRequest, key: str, fp: str, *, op: str, lease: Lease | None = None
) -> tuple[int, _Attempt | None]:
    """Phase (a), inside the caller's transaction: validate against the inventory and hold.
    Returns the order and, for a purchase (whose key `lease` holds), its payment attempt."""
    conn = s.conn
    ids = [i.ticket_type_id for i in req.items]
    marks = ",".join("?" * len(ids))
    types = {
        r["id"]: r
        for r in conn.execute(
            "SELECT t.id, t.event_id, t.name, t.price_minor, t.max_per_order, t.sales,"
            " e.currency, e.status AS event_status FROM ticket_types t JOIN events e"
            f" ON e.id = t.event_id WHERE t.id IN ({marks})",
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
        if t["event_status"] != "on_sale":
            raise invalid_state(f"event {t['event_id']} is called off; nothing is sold for it")
        if t["sales"] != "open":
            raise invalid_state(
                f"sales of {t['name']!r} (type {t['id']}) are closed",
            )
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
        " idempotency_key, pay_method, hold_expires_us, created_at, updated_at)"
        " VALUES (?, 'PENDING', ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (event_ids[0], req.email, req.name, currency, total, key, req.pay, expires, now, now),
    ).fetchone()[0]
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
    idempotency.insert(conn, key, fp, order_id, lease=lease if op == "purchase" else None)
    if op != "purchase":
        return order_id, None
    assert req.pay is not None
    payment_id, ref = payments.open_attempt(conn, order_id, req.pay, total, req.card, first=True)
    return order_id, _Attempt(payment_id, order_id, req.pay, total, currency, ref)


def _replay(s: Session, rec: idempotency.KeyRecord) -> OrderResult:
    assert rec.order_id is not None
    if rec.result_code:
        raise TicketHubError(
            ErrorCode(rec.result_code), rec.result_message or rec.result_code, order_id=rec.order_id
        )
    return OrderResult(get_order(s, rec.order_id), True)


def _mismatch(key: str, order_id: int | None) -> TicketHubError:
    return TicketHubError(
        ErrorCode.IDEMPOTENCY_MISMATCH,
        f"idempotency key {key!r} was used for a different request",
        order_id=order_id,
        hint="use a new key for a new request",
    )


def _claim_existing(
    s: Session, rec: idempotency.KeyRecord, fp: str, lease: Lease
) -> Literal["replay", "resume"]:
    """Inside phase (a)'s transaction: what to do with a key we have seen before."""
    if not idempotency.same_request(rec, fp):
        raise _mismatch(rec.key, rec.order_id)
    if rec.finished:
        return "replay"
    assert rec.order_id is not None
    row = order_row(s.conn, rec.order_id)
    if row["status"] != "PENDING":  # finished by reconcile or a callback meanwhile
        finish_key(s.conn, row["id"])
        return "replay"
    if idempotency.holder_alive(rec, clock.now_us(), lease):
        raise TicketHubError(
            ErrorCode.IN_PROGRESS,
            f"order {rec.order_id} for key {rec.key!r} is still being processed",
            order_id=rec.order_id,
            hint="retry in a moment",
        )
    idempotency.claim(s.conn, rec.key, lease)
    return "resume"


@dataclass(frozen=True)
class _Attempt:
    """A payment attempt just opened in phase (a): what phase (b) needs to charge it."""

    id: int
    order_id: int
    method: str
    amount_minor: int
    currency: str
    provider_ref: str | None


@dataclass
class _Plan:
    """What phase (a) decided for one purchase request."""

    req: OrderRequest
    key: str
    order_id: int | None = None
    replayed: bool = False
    replay: idempotency.KeyRecord | None = None
    payment_id: int | None = None
    fresh: _Attempt | None = None  # set when phase (a) opened the attempt itself


def _attempt_for(s: Session, order_id: int, req: OrderRequest) -> int:
    """The attempt a resumed purchase goes on with: the open one (same provider key, so the
    provider answers with the first charge), else a new one."""
    open_ = payments.open_for(s.conn, order_id)
    if open_ is not None:
        return open_["id"]
    row = order_row(s.conn, order_id)
    assert req.pay is not None
    return payments.open_attempt(s.conn, order_id, req.pay, row["total_minor"], req.card)[0]


def _begin_purchase(s: Session, req: OrderRequest, lease: Lease) -> _Plan:
    """Phase (a), inside the caller's transaction: a new reservation (its key held by
    `lease`), a replay of a finished key, or the resumption of a key whose worker died."""
    if req.pay is None:
        raise invalid(PAY_REQUIRED, field="pay")
    key = req.idempotency_key or idempotency.generate_key()
    fp = req.fingerprint("purchase")
    rec = idempotency.get(s.conn, key)
    if rec is None:
        oid, fresh = _reserve(s, req, key, fp, op="purchase", lease=lease)
        assert fresh is not None
        return _Plan(req, key, oid, payment_id=fresh.id, fresh=fresh)
    if _claim_existing(s, rec, fp, lease) == "replay":
        return _Plan(req, key, rec.order_id, True, idempotency.get(s.conn, key))
    assert rec.order_id is not None
    return _Plan(req, key, rec.order_id, True, payment_id=_attempt_for(s, rec.order_id, req))


def purchase(s: Session, req: OrderRequest) -> OrderResult:
    """Reserve, charge and issue in one call; safe to retry with the same key. The call is
    one unit of work: its key is leased to it alone until it returns."""
    _provider_first(s, [req])
    with Lease() as lease:
        with transaction(s.conn):
            plan = _begin_purchase(s, req, lease)
        if plan.replay is not None:
            return _replay(s, plan.replay)
        faults.point("after_reserve")
        return _complete(s, plan)


def _provider_first(s: Session, reqs: list[OrderRequest]) -> None:
    """A card payment needs the provider's own connection: it is opened before anything is
    reserved, so a database that refuses one more connection (PostgreSQL's max_connections)
    fails the purchase having changed nothing, not with seats held by an order that the
    error does not name."""
    if any(r.pay == "card" for r in reqs):
        s.provider  # noqa: B018 (opens it)


def purchase_many(s: Session, reqs: list[OrderRequest]) -> list[OrderResult | TicketHubError]:
    """Purchases with group commit, for batches: every request's phase (a) shares one
    transaction and every phase (c) another, each request in its own savepoint so a refusal
    rolls back alone. Each result is final (committed) when returned; a crash leaves every
    request at its recovery point, exactly as `purchase` would. Keys must be distinct.

    The outcome is the one a row-by-row run would give: a request refused as SOLD_OUT while
    an earlier request of the group still holds seats it may give back (its card may be
    declined) is not answered here; it and the rest go on in a new group once those earlier
    ones are settled."""
    outcomes: list[OrderResult | TicketHubError] = []
    rest = list(reqs)
    _provider_first(s, rest)
    with Lease() as lease:  # one unit of work: its keys are distinct
        while rest:
            done, rest = _purchase_group(s, rest, lease)
            outcomes.extend(done)
    return outcomes


def _purchase_group(
    s: Session, reqs: list[OrderRequest], lease: Lease
) -> tuple[list[OrderResult | TicketHubError], list[OrderRequest]]:
    """One group: the answers for a prefix of `reqs`, and the requests left for the next."""
    outcomes: list[OrderResult | TicketHubError | None] = []
    plans: dict[int, _Plan] = {}
    cut = len(reqs)
    with transaction(s.conn) as c:
        for i, req in enumerate(reqs):
            try:
                with savepoint(c):
                    plans[i] = _begin_purchase(s, req, lease)
                outcomes.append(None)
            except TicketHubError as err:
                if err.code == ErrorCode.SOLD_OUT and any(p.replay is None for p in plans.values()):
                    cut = i  # an earlier request may still give seats back: ask again later
                    break
                outcomes.append(err)
    live = {i: p for i, p in plans.items() if p.replay is None}
    if live:
        faults.point("after_reserve")
    charges = {i: _charge(s, p) for i, p in live.items()}
    if live:
        faults.point("after_charge")
    settled: dict[int, dict[str, Any]] = {}
    try:
        if live:
            with transaction(s.conn):
                faults.busy_point("busy_after_charge")
                for i, p in live.items():
                    settled[i] = _settle_in_tx(s, p, charges[i])
    except (TicketHubError, DatabaseError) as exc:
        for i, p in live.items():
            outcomes[i] = _after_charge_failure(s, p, exc)
        live = {}
    for i, p in plans.items():
        if outcomes[i] is not None:
            continue
        try:
            outcomes[i] = (
                _replay(s, p.replay)
                if p.replay is not None
                else _finish(s, p, charges[i], settled[i])
            )
        except TicketHubError as err:
            outcomes[i] = err
    return [o for o in outcomes if o is not None], reqs[cut:]


def create_order(s: Session, req: OrderRequest) -> OrderResult:
    """Reserve seats as a PENDING order (no charge); pay later with `pay_order`. A retry with
    the same key returns that order as it stands now."""
    key = req.idempotency_key or idempotency.generate_key()
    fp = req.fingerprint("create")
    with transaction(s.conn):
        rec = idempotency.get(s.conn, key)
        if rec is None:
            order_id, _ = _reserve(s, req, key, fp, op="create")
        elif not idempotency.same_request(rec, fp):
            raise _mismatch(key, rec.order_id)
    if rec is not None:
        assert rec.order_id is not None
        return OrderResult(get_order(s, rec.order_id), True)
    return OrderResult(get_order(s, order_id), False)


def resolve_open_payment(s: Session, oid: int, *, mode: Mode, reason: str) -> str | None:
    """Ask the provider about the order's open attempt before anyone takes another payment
    or cancels: a captured charge is applied (`mode`), an open one voided so it can never
    land. Cash left open by a crash was taken by the operator: it counts as captured.
    Returns the outcome, or None when no attempt was open. IN_PROGRESS while the attempt's
    worker is alive."""
    open_ = payments.open_for(s.conn, oid)
    if open_ is None:
        return None
    rec = idempotency.for_order(s.conn, oid)
    if (
        open_["status"] == "pending"
        and rec is not None
        and idempotency.holder_alive(rec, clock.now_us())
    ):
        raise TicketHubError(
            ErrorCode.IN_PROGRESS,
            f"a payment for order {oid} is being taken right now",
            order_id=oid,
            hint="wait for it to finish, then look at the order again",
        )
    if open_["method"] == "cash":
        outcome = "captured"
    else:
        ref = open_["provider_ref"]
        found = s.provider.lookup(ref) or s.provider.void(ref, oid)
        outcome = found.status
    with transaction(s.conn):
        payment = payments.get(s.conn, open_["id"])
        if payment["status"] in payments.OPEN:
            apply_outcome(s, payment, outcome, mode=mode, reason=reason)
    run_refunds(s, oid)
    return outcome


def pay_order(s: Session, order_id: object, *, pay: str | None, card: str | None) -> OrderResult:
    """Charge a PENDING order and issue its tickets. An attempt left open (outcome unknown,
    or its worker died) is settled with the provider first, so two payments are never kept."""
    oid = v.parse_id(order_id, "order")
    pay = normal_pay(pay)
    if pay not in ("card", "cash"):
        raise invalid(f"{ref('pay')} must be card (with {ref('card')} NUMBER) or cash", field="pay")
    if pay == "cash" and card:
        raise invalid(CARD_WITHOUT_CARD_PAY, field="card")
    card_digits = v.card_number(card) if pay == "card" else None
    with Lease() as lease:  # the call is one unit of work, its lease its own
        return _pay(s, oid, pay, card_digits, lease)


def _pay(s: Session, oid: int, pay: str, card_digits: str | None, lease: Lease) -> OrderResult:
    order_row(s.conn, oid)  # NOT_FOUND before anyone is asked anything
    earlier = resolve_open_payment(s, oid, mode="pay", reason="earlier payment found captured")
    with transaction(s.conn) as c:
        row = order_row(c, oid)
        if row["status"] == "PAID" and earlier == "captured":
            if row["pay_method"] == pay:
                return OrderResult(order_dict(c, row), True)
            raise invalid_state(
                f"order {oid} is PAID: the earlier {row['pay_method']} payment of"
                f" {money.format_amount(row['total_minor'], row['currency'])} {row['currency']}"
                f" went through; take no {pay} payment",
                order_id=oid,
            )
        if row["status"] != "PENDING":
            raise invalid_state(
                f"order {oid} is {row['status']}; only a PENDING order can be paid", order_id=oid
            )
        event = c.execute("SELECT status FROM events WHERE id = ?", (row["event_id"],)).fetchone()
        if event["status"] != "on_sale":  # being called off: its re-run cancels this order
            raise invalid_state(
                f"event {row['event_id']} is called off; order {oid} cannot be paid",
                order_id=oid,
            )
        if hold_expired(c, row):  # whatever was open before is settled by now
            raise invalid_state(f"the hold of order {oid} has expired", order_id=oid)
        if payments.open_for(c, oid) is not None:  # another payer got here first
            raise TicketHubError(
                ErrorCode.IN_PROGRESS,
                f"another payment for order {oid} was started meanwhile; take no other payment",
                order_id=oid,
                field="pay",
                hint="look at the order, or reconcile it",
            )
        rec = idempotency.for_order(c, oid)
        assert rec is not None
        if idempotency.holder_alive(rec, clock.now_us(), lease):
            raise TicketHubError(
                ErrorCode.IN_PROGRESS, f"order {oid} is being paid right now", order_id=oid
            )
        idempotency.claim(c, rec.key, lease)
        c.execute(
            "UPDATE orders SET pay_method = ?, updated_at = ? WHERE id = ?",
            (pay, clock.now_text(), oid),
        )
        attempt, _ = payments.open_attempt(c, oid, pay, row["total_minor"], card_digits)
    payment = OrderRequest.model_construct(items=(), pay=pay, card=card_digits)
    return _complete(s, _Plan(payment, rec.key, oid, payment_id=attempt))


def _charge(s: Session, plan: _Plan) -> payments.ChargeResult:
    """Phase (b): take the money, outside any transaction, by the attempt's own key."""
    assert plan.payment_id is not None
    if plan.fresh is not None:  # just opened: if a callback voided it since, the provider says so
        attempt: Any = vars(plan.fresh)
    else:
        attempt = payments.get(s.conn, plan.payment_id)
        if attempt["status"] not in payments.OPEN:  # settled meanwhile (reconcile, callback)
            return payments.ChargeResult(attempt["status"], attempt["provider_ref"])
    if attempt["method"] == "cash":
        return payments.ChargeResult("captured", None, "cash taken by the operator")
    ref = attempt["provider_ref"]
    if plan.req.card is None:  # resumed without a card (cannot happen through the CLI): ask
        return s.provider.lookup(ref) or payments.ChargeResult("unknown")
    return s.provider.charge(
        ref, attempt["order_id"], attempt["amount_minor"], attempt["currency"], plan.req.card
    )


def _complete(s: Session, plan: _Plan) -> OrderResult:
    """Phases (b) and (c): charge outside any transaction, then settle the order."""
    result = _charge(s, plan)
    faults.point("after_charge")
    try:
        with transaction(s.conn):
            faults.busy_point("busy_after_charge")
            order = _settle_in_tx(s, plan, result)
    except (TicketHubError, DatabaseError) as exc:
        raise _after_charge_failure(s, plan, exc) from None
    return _finish(s, plan, result, order)


def _after_charge_failure(
    s: Session, plan: _Plan, exc: TicketHubError | DatabaseError
) -> TicketHubError:
    """The settlement failed after the provider may have taken money: never say that nothing
    changed. Name the order and the key; a retry with the key finishes without a new charge."""
    err = exc if isinstance(exc, TicketHubError) else translate(exc, s.conn)
    # a busy database's own message ends "nothing was changed": true of the step that
    # failed, false of the purchase (the provider may have taken the money)
    why = "the database stayed busy" if err.code == ErrorCode.DB_BUSY else err.message
    return TicketHubError(
        err.code,
        f"order {plan.order_id}: a payment may have been taken, but recording it failed ({why})",
        order_id=plan.order_id,
        hint="do not take another payment; retry with the same idempotency key (it will not"
        " charge again), or reconcile the order",
        details={"idempotency_key": plan.key, "payment_may_exist": True},
    )


def _settle_in_tx(s: Session, plan: _Plan, result: payments.ChargeResult) -> dict[str, Any]:
    """Phase (c) inside the caller's transaction; returns the order as it now stands (read
    in the same transaction, so the answer costs no second one)."""
    assert plan.payment_id is not None and plan.order_id is not None
    attempt = vars(plan.fresh) if plan.fresh else payments.get(s.conn, plan.payment_id)
    if not apply_outcome(s, attempt, result.status, mode="settle", reason=_reason(result)):
        finish_key(s.conn, plan.order_id)  # settled meanwhile: its end is the order's
    elif result.status == "unknown":
        idempotency.release(s.conn, plan.key)  # a retry may resume at once
    return order_dict(s.conn, order_row(s.conn, plan.order_id))


def _reason(result: payments.ChargeResult) -> str:
    return {
        "captured": "payment captured",
        "unknown": "the provider did not answer; outcome unknown",
    }.get(result.status, result.message or result.status)


def _finish(
    s: Session, plan: _Plan, result: payments.ChargeResult, order: dict[str, Any]
) -> OrderResult:
    """After phase (c) committed: give back any money not owed, then answer."""
    assert plan.order_id is not None
    order_id, key = plan.order_id, plan.key
    if any(p["refund"] == "requested" for p in order["payments"]):
        run_refunds(s, order_id)
        order = get_order(s, order_id)
    attempt = next((p for p in order["payments"] if p["id"] == plan.payment_id), None)
    if order["status"] == "PENDING" and attempt is not None and attempt["status"] == "unknown":
        raise TicketHubError(
            ErrorCode.PAYMENT_UNKNOWN,
            f"payment outcome for order {order_id} is unknown; its seats stay held",
            order_id=order_id,
            hint="do not take another payment; retry with the same idempotency key, or"
            " reconcile the order; to give up, cancel it (that asks the provider first)",
            details={"idempotency_key": key},
        )
    if order["status"] == "FAILED":
        message = f"payment for order {order_id} declined: {result.message or result.status}"
        if result.status not in ("declined", "voided"):
            message = f"payment for order {order_id} failed"
        raise TicketHubError(
            ErrorCode.PAYMENT_DECLINED, message, order_id=order_id, details={"idempotency_key": key}
        )
    return OrderResult(order, plan.replayed)


# ------------------------------------------------------------------------------ cancelling


def cancel_order(
    s: Session, order_id: object, *, reason: str | None = None, force: bool = False
) -> dict[str, Any]:
    """PENDING → CANCELLED (hold released; an open payment asked about first: voided, or
    refunded if it was captured); PAID → CANCELLED with every captured payment refunded once
    and the tickets void. Admitted tickets need `force`, and their seats stay used."""
    oid = v.parse_id(order_id, "order")
    why = v.optional_text(reason, "reason") or "cancelled by operator"
    row = order_row(s.conn, oid)
    if row["status"] == "CANCELLED" and payments.requested_refunds(s.conn, oid):
        run_refunds(s, oid)  # a retry after a crash: finish giving the money back
        return get_order(s, oid)
    _refuse_cancel(s.conn, row, force)
    resolve_open_payment(s, oid, mode="cancel", reason=f"asked before cancelling: {why}")
    with transaction(s.conn) as c:
        row = order_row(c, oid)
        _refuse_cancel(c, row, force)
        if row["status"] == "PENDING":
            release_pending(c, s.operator, row, "CANCELLED", why)
        else:
            for type_id, count in tickets.void_for_order(c, oid).items():
                inventory.unsell(c, type_id, count)
            _set_status(c, s.operator, row, "CANCELLED", why)
            finish_key(c, oid)
        for p in payments.for_order(c, oid):
            if p["status"] == "captured":
                payments.request_refund(c, s.operator, p, why)
    run_refunds(s, oid)
    return get_order(s, oid)


def _refuse_cancel(conn: Connection, row: Row, force: bool) -> None:
    oid = row["id"]
    if row["status"] not in ("PENDING", "PAID"):
        raise invalid_state(
            f"order {oid} is {row['status']}; only PENDING or PAID orders can be cancelled",
            order_id=oid,
        )
    if row["status"] == "PAID" and not force:
        admitted = tickets.admitted_count(conn, oid)
        if admitted:
            raise invalid_state(
                f"order {oid} has {admitted} ticket(s) already admitted at the gate;"
                f" cancel with {ref('force')} to refund anyway (their seats stay used)",
                order_id=oid,
                field="force",
            )


def finish_legacy_cancellations(s: Session) -> list[int]:
    """Cancellations of PAID orders that a version-1 build began and a crash interrupted."""
    rows = s.conn.execute(
        "SELECT id, cancel_requested_reason FROM orders WHERE status = 'PAID'"
        " AND cancel_requested_reason IS NOT NULL"
    ).fetchall()
    for r in rows:
        cancel_order(s, r["id"], reason=r["cancel_requested_reason"], force=True)
    return [r["id"] for r in rows]


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

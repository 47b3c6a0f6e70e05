"""Calling an event off: every PAID order refunded once through the payment ledger, every
ticket void, every hold released, and nothing sold for it any more.

Resumable: the event is marked `cancelling` first, then its orders are cancelled one by one,
each in its own transactions (`orders.cancel_order`, which asks the provider about an open
payment first and refunds each captured payment at most once). A crash anywhere leaves the
event `cancelling`; running the command again goes on from the orders still open, and the
refunds already given are never given again. The event is `cancelled` once none is left;
running the command on it then changes nothing and says so (exit 0: the outcome asked for).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import audit, events, orders, payments
from . import validation as v
from .db import snapshot, transaction
from .errors import ErrorCode, TicketHubError, ref
from .session import Session

Progress = Callable[[int, int], None]  # (done, total)


def _open_orders(s: Session, eid: int) -> dict[int, str]:
    """The event's orders still to cancel, by id, with their status (PENDING: a hold)."""
    rows = s.conn.execute(
        "SELECT id, status FROM orders WHERE event_id = ? AND status IN ('PENDING', 'PAID')"
        " ORDER BY id",
        (eid,),
    ).fetchall()
    return {r["id"]: r["status"] for r in rows}


def _finish_refunds(s: Session, eid: int) -> None:
    """Refunds a crash left owed on orders already cancelled (each is given once)."""
    ids = [
        r["id"]
        for r in s.conn.execute(
            "SELECT p.id FROM payments p JOIN orders o ON o.id = p.order_id"
            " WHERE o.event_id = ? AND p.refund_state = 'requested'",
            (eid,),
        )
    ]
    if ids:
        payments.run_refunds(s.conn, s.provider, s.operator, ids)


def preview(s: Session, event_id: object) -> dict[str, Any]:
    """What calling the event off would do, changing nothing: each open order with the
    money it would give back by method (captured minus refunded), and the holds released.
    Unknown card outcomes are asked at the provider only when it is done for real."""
    eid = v.parse_id(event_id, "event")
    with snapshot(s.conn) as c:
        event = events.brief(s, eid)
        rows = c.execute(
            "SELECT o.id, o.status, o.name, o.email,"
            " coalesce(sum(CASE WHEN p.method = 'card' THEN p.amount_minor - p.refunded_minor"
            " END), 0) AS card_minor,"
            " coalesce(sum(CASE WHEN p.method = 'cash' THEN p.amount_minor - p.refunded_minor"
            " END), 0) AS cash_minor"
            " FROM orders o LEFT JOIN payments p ON p.order_id = o.id AND p.status = 'captured'"
            " WHERE o.event_id = ? AND o.status IN ('PENDING', 'PAID') GROUP BY o.id ORDER BY o.id",
            (eid,),
        ).fetchall()
    found = [
        {
            "order_id": r["id"],
            "status": r["status"],
            "buyer": r["name"] or r["email"],
            "card_minor": r["card_minor"],
            "cash_minor": r["cash_minor"],
        }
        for r in rows
    ]
    return {
        "event": event,
        "dry_run": True,
        "orders": found,
        "holds": sum(1 for o in found if o["status"] == "PENDING"),
        "card_minor": sum(o["card_minor"] for o in found),
        "cash_minor": sum(o["cash_minor"] for o in found),
    }


def cancel_event(
    s: Session, event_id: object, *, reason: object, progress: Progress | None = None
) -> dict[str, Any]:
    """Call the event off; returns the event, the orders cancelled now and those left (a
    payment still being taken by a live process: run the command again)."""
    eid = v.parse_id(event_id, "event")
    why = v.optional_text(reason if isinstance(reason, str) else None, "reason")
    if why is None:
        raise TicketHubError(
            ErrorCode.INVALID_INPUT,
            f"give {ref('reason')}: buyers and the audit log are told why",
            field="reason",
        )
    with transaction(s.conn) as c:
        event = events.event_row(c, eid)
        if event["status"] == "on_sale":
            c.execute(
                "UPDATE events SET status = 'cancelling', cancel_reason = ? WHERE id = ?",
                (why, eid),
            )
            audit.record(
                c, s.operator, "event", eid, "status", from_state="on_sale",
                to_state="cancelling", reason=why,
            )  # fmt: skip
    already = event["status"] == "cancelled"  # a re-run (after a crash, say) is safe: 0
    todo = _open_orders(s, eid)
    holds = {oid for oid, status in todo.items() if status == "PENDING"}
    done, left, refunds = [], [], []
    for n, oid in enumerate(todo, start=1):
        try:
            order = orders.cancel_order(s, oid, reason=f"event called off: {why}", force=True)
            done.append(oid)
            refunds += _refunds_of(order)
        except TicketHubError as err:
            if err.code != ErrorCode.IN_PROGRESS:
                raise
            left.append(oid)  # a live process is taking its payment: next run
        if progress is not None:
            progress(n, len(todo))
    _finish_refunds(s, eid)
    if not left and not _open_orders(s, eid):
        with transaction(s.conn) as c:
            cur = c.execute(
                "UPDATE events SET status = 'cancelled' WHERE id = ? AND status = 'cancelling'",
                (eid,),
            )
            if cur.rowcount == 1:
                audit.record(
                    c, s.operator, "event", eid, "status", from_state="cancelling",
                    to_state="cancelled", reason=why,
                )  # fmt: skip
    return {
        "event": events.get_event(s, eid),
        "cancelled_orders": done,
        "left": left,
        "refunds": refunds,
        "already_cancelled": already,
        "holds_released": len(holds.intersection(done)),
    }


def _refunds_of(order: dict[str, Any]) -> list[dict[str, Any]]:
    """The money this cancellation gives back, one entry per payment, in the words a
    cashier acts on ("hand back 20.00 EUR cash", "refunded 90.00 EUR to card …4242")."""
    return [
        {
            "order_id": order["id"],
            "payment_id": p["id"],
            "method": p["method"],
            "amount_minor": p["amount_minor"],
            "currency": order["currency"],
            "refund": p["refund"],
            "what": payments.describe(p, order["currency"], just_now=True),
        }
        for p in order["payments"]
        if p.get("refund")
    ]

"""`reconcile`: bring every unfinished order to a final, consistent state.

- A PENDING order with a payment in flight whose worker has been silent long enough: ask the
  provider. Captured → PAID with tickets. Nothing there → void the order at the provider first
  (so a worker that was only slow cannot charge it afterwards), then FAILED, hold released.
- A PENDING order whose hold ran out with no payment in flight → CANCELLED (hold_expired).
- A PAID order whose refund was asked for but not finished → refunded and CANCELLED.
- A late callback success still waiting for its refund → refunded.
Running it twice changes nothing the second time.
"""

from __future__ import annotations

from typing import Any

from . import callbacks, clock, idempotency, orders, payments
from .db import transaction
from .errors import ErrorCode, invalid
from .session import Session

DEFAULT_STALE_AFTER_S = 60.0


def _stale_candidates(s: Session, stale_after_s: float) -> list[int]:
    now = clock.now_us()
    rows = s.conn.execute(
        "SELECT o.id, k.key FROM orders o LEFT JOIN idempotency_keys k ON k.order_id = o.id"
        " WHERE o.status = 'PENDING' AND o.payment_state IS NOT NULL ORDER BY o.id"
    ).fetchall()
    result = []
    for r in rows:
        rec = idempotency.get(s.conn, r["key"]) if r["key"] else None
        if rec is not None:
            if now - rec.last_seen_us < stale_after_s * 1_000_000:
                continue
            if idempotency.holder_alive(rec, now):
                continue
        result.append(r["id"])
    return result


def _settle(s: Session, order_id: int) -> dict[str, Any] | None:
    found = s.provider.lookup(order_id)
    if found is None:
        found = s.provider.void(order_id)  # from now on no charge can be taken for it
    with transaction(s.conn) as c:
        row = orders._order_row(c, order_id)
        if row["status"] != "PENDING" or row["payment_state"] is None:
            return None
        rec = idempotency.for_order(c, order_id)
        if found.status == "captured":
            payments.record(
                c,
                order_id,
                kind="charge",
                method=row["pay_method"] or "card",
                status="captured",
                amount_minor=row["total_minor"],
                reference=found.reference,
            )
            orders.mark_paid(
                c,
                s.operator,
                row,
                method=row["pay_method"] or "card",
                reason="reconcile: charge found captured",
            )
            if rec is not None:
                idempotency.finish(c, rec.key)
            to = "PAID"
        else:
            reason = f"reconcile: no charge at the provider ({found.status})"
            orders.release_pending(c, s.operator, row, "FAILED", reason)
            if rec is not None:
                idempotency.finish(
                    c,
                    rec.key,
                    ErrorCode.PAYMENT_DECLINED,
                    f"payment for order {order_id} failed: {reason}",
                )
            to = "FAILED"
    return {"order_id": order_id, "from": "PENDING", "to": to, "reason": reason_for(to)}


def reason_for(to: str) -> str:
    return {"PAID": "charge_captured", "FAILED": "no_charge"}.get(to, to.lower())


def reconcile(s: Session, stale_after: object = DEFAULT_STALE_AFTER_S) -> list[dict[str, Any]]:
    try:
        stale_s = float(str(stale_after))
    except ValueError:
        raise invalid(f"--stale-after must be seconds, got {str(stale_after)[:20]!r}") from None
    if not 0 <= stale_s <= 30 * 24 * 3600:
        raise invalid("--stale-after must be between 0 and 2592000 seconds")
    repaired: list[dict[str, Any]] = []
    for order_id in _stale_candidates(s, stale_s):
        done = _settle(s, order_id)
        if done:
            repaired.append(done)
    with transaction(s.conn) as c:
        for order_id in orders.expire_holds(c, s.operator):
            repaired.append(
                {
                    "order_id": order_id,
                    "from": "PENDING",
                    "to": "CANCELLED",
                    "reason": "hold_expired",
                }
            )
    unfinished = s.conn.execute(
        "SELECT id FROM orders WHERE status = 'PAID' AND cancel_requested_reason IS NOT NULL"
    ).fetchall()
    for r in unfinished:
        if orders.finish_paid_cancellation(s, r["id"]):
            repaired.append(
                {"order_id": r["id"], "from": "PAID", "to": "CANCELLED", "reason": "refunded"}
            )
    for callback_id, order_id, amount in callbacks.pending_refunds(s):
        callbacks.settle_refund(s, callback_id, order_id, amount)
        repaired.append(
            {"order_id": order_id, "from": None, "to": None, "reason": "late_success_refunded"}
        )
    return repaired

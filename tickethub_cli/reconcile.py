"""`reconcile`: bring every unfinished order to a final, consistent state.

- A payment attempt left open (being taken, or outcome unknown) whose worker has been silent
  long enough: ask the provider by the attempt's key. Captured → the order is PAID with
  tickets (or, if it no longer can be, the money is refunded once). Nothing there → void the
  charge key first (so a worker that was only slow cannot charge it afterwards), then FAILED,
  hold released. Cash is never asked for at the card provider: the operator took it.
- A PENDING order whose hold ran out with no payment in flight → CANCELLED (hold_expired).
- Every refund asked for and not yet given (a crash, a provider that did not answer).
Running it twice changes nothing the second time. `--order ID` does all this for one order
now, whatever `--stale-after` says, once its worker is gone or its outcome is unknown.
"""

from __future__ import annotations

from typing import Any

from . import clock, idempotency, orders, payments
from . import validation as v
from .db import snapshot, transaction
from .errors import ErrorCode, TicketHubError, invalid
from .session import Session

DEFAULT_STALE_AFTER_S = 60.0


def _stale_orders(s: Session, stale_after_s: float) -> list[int]:
    """Orders with an open attempt whose worker has been silent that long and is gone."""
    now = clock.now_us()
    rows = s.conn.execute(
        "SELECT p.order_id, p.status, o.idempotency_key AS key FROM payments p"
        " JOIN orders o ON o.id = p.order_id"
        " WHERE p.status IN ('pending', 'unknown') ORDER BY p.order_id"
    ).fetchall()
    result = []
    for r in rows:
        rec = idempotency.get(s.conn, r["key"]) if r["key"] else None
        if rec is not None:
            if now - rec.last_seen_us < stale_after_s * 1_000_000:
                continue
            if idempotency.holder_alive(rec, now):
                continue
        result.append(r["order_id"])
    return result


def _resolve(s: Session, order_id: int) -> dict[str, Any] | None:
    before = orders.order_row(s.conn, order_id)["status"]
    outcome = orders.resolve_open_payment(
        s, order_id, mode="settle", reason="reconcile: asked the provider"
    )
    if outcome is None:
        return None
    after = orders.order_row(s.conn, order_id)["status"]
    reason = "charge_captured" if outcome == "captured" else "no_charge"
    return {"order_id": order_id, "from": before, "to": after, "reason": reason}


def _expire(s: Session, order_id: int | None) -> list[dict[str, Any]]:
    with transaction(s.conn) as c:
        if order_id is None:
            expired = orders.expire_holds(c, s.operator)
        else:
            row = orders.order_row(c, order_id)
            expired = []
            if orders.hold_expired(c, row):
                orders.release_pending(c, s.operator, row, "CANCELLED", "hold_expired")
                expired = [order_id]
    return [
        {"order_id": oid, "from": "PENDING", "to": "CANCELLED", "reason": "hold_expired"}
        for oid in expired
    ]


def _refunds(s: Session, order_id: int | None) -> list[dict[str, Any]]:
    done = orders.run_refunds(s, order_id)
    result = []
    for pid in done:
        payment = payments.get(s.conn, pid)  # carries its order's currency
        result.append(
            {
                "order_id": payment["order_id"],
                "from": None,
                "to": None,
                "reason": "refunded",
                "payment_id": pid,
                # what the cashier must do or know: "hand back 20.00 EUR cash"
                "what": payments.describe(
                    payments.payment_dict(payment), payment["currency"], just_now=True
                ),
            }
        )
    return result


def parse_stale_after(stale_after: object) -> float:
    try:
        stale_s = float(str(stale_after))
    except ValueError:
        raise invalid(f"--stale-after must be seconds, got {str(stale_after)[:20]!r}") from None
    if not 0 <= stale_s <= 30 * 24 * 3600:
        raise invalid("--stale-after must be between 0 and 2592000 seconds")
    return stale_s


def reconcile(
    s: Session, stale_after: object = DEFAULT_STALE_AFTER_S, *, order_id: object | None = None
) -> list[dict[str, Any]]:
    stale_s = parse_stale_after(stale_after)
    oid = None if order_id is None else v.parse_id(order_id, "order")
    repaired: list[dict[str, Any]] = []
    if oid is not None:
        with snapshot(s.conn) as c:
            orders.order_row(c, oid)  # NOT_FOUND before anything is asked
        candidates = [oid]
    else:
        candidates = _stale_orders(s, stale_s)
    for candidate in candidates:
        try:
            done = _resolve(s, candidate)
        except TicketHubError as err:  # a worker came back to it meanwhile: its to finish
            if err.code != ErrorCode.IN_PROGRESS or oid is not None:
                raise
            continue
        if done:
            repaired.append(done)
    repaired.extend(_expire(s, oid))
    if oid is None:
        for legacy in orders.finish_legacy_cancellations(s):
            repaired.append(
                {"order_id": legacy, "from": "PAID", "to": "CANCELLED", "reason": "refunded"}
            )
    repaired.extend(_refunds(s, oid))
    return repaired

"""Provider callbacks: signed, idempotent by callback id, never able to oversell.

A success for an order that can no longer be paid (cancelled, failed, hold expired) is
refunded through the provider; a failure after a success changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from . import audit, bounded, clock, orders, payments
from .db import transaction
from .errors import ErrorCode, TicketHubError, invalid
from .session import Session


def sign(payload: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def _secret() -> str:
    secret = os.environ.get("TICKETHUB_WEBHOOK_SECRET", "")
    if not secret:
        raise invalid(
            "TICKETHUB_WEBHOOK_SECRET is not set", hint="export the provider's signing secret"
        )
    return secret


def _log(s: Session, payload: bytes, outcome: str, body: dict[str, Any] | None = None) -> None:
    body = body or {}
    s.conn.execute(
        "INSERT INTO callbacks (callback_id, order_id, status, amount_minor, outcome,"
        " refund_pending, payload_sha256, received_at, operator)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            body.get("id"),
            body.get("order_id"),
            body.get("status"),
            body.get("amount_minor"),
            outcome,
            1 if outcome == "refund" else 0,
            hashlib.sha256(payload).hexdigest(),
            clock.now_text(),
            s.operator,
        ),
    )


def _parse(payload: bytes) -> dict[str, Any]:
    body = bounded.load_json(payload, "callback payload")
    if not isinstance(body, dict):
        raise invalid("callback payload must be a JSON object")
    cb_id, status = body.get("id"), body.get("status")
    if not isinstance(cb_id, str | int) or isinstance(cb_id, bool) or str(cb_id) == "":
        raise invalid("callback payload needs an id")
    if status not in ("succeeded", "failed"):
        raise invalid("callback status must be succeeded or failed")
    amount = body.get("amount_minor")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise invalid("callback amount_minor must be a non-negative integer")
    order_id = body.get("order_id")
    if isinstance(order_id, bool) or not isinstance(order_id, int | str):
        raise invalid("callback needs an order_id")
    return {"id": str(cb_id), "status": status, "amount_minor": amount, "order_id": order_id}


def handle(s: Session, payload: bytes, signature: str) -> dict[str, Any]:
    """Apply one provider callback; returns the order as it stands afterwards."""
    secret = _secret()
    expected = sign(payload, secret)
    if not hmac.compare_digest(
        expected.encode(), signature.strip().lower().encode("utf-8", "surrogatepass")
    ):
        with transaction(s.conn):
            _log(s, payload, "signature_invalid")
        raise TicketHubError(ErrorCode.SIGNATURE_INVALID, "callback signature does not match")
    body = _parse(payload)
    oid = orders.v.parse_id(body["order_id"], "order")
    body["order_id"] = oid
    provider_says = None
    if body["status"] == "failed":
        # Ask the provider first, as reconcile does: voiding makes sure no charge can still
        # land, and reveals one that already did (then the failure is stale).
        current = s.conn.execute("SELECT status FROM orders WHERE id = ?", (oid,)).fetchone()
        if current is not None and current["status"] == "PENDING":
            provider_says = s.provider.void(oid).status
    refund_amount = None
    with transaction(s.conn) as c:
        seen = c.execute(
            "SELECT 1 FROM callbacks WHERE callback_id = ? AND outcome <> 'signature_invalid'",
            (body["id"],),
        ).fetchone()
        row = orders._order_row(c, oid)
        if seen:
            return orders.order_dict(c, row)
        if body["amount_minor"] != row["total_minor"]:
            raise TicketHubError(
                ErrorCode.AMOUNT_MISMATCH,
                f"callback amount {body['amount_minor']} does not match order {oid}"
                f" total {row['total_minor']}",
                order_id=oid,
            )
        outcome = _apply(s, row, body["status"], provider_says)
        _log(s, payload, outcome, body)
        if outcome == "refund":
            refund_amount = row["total_minor"]
    if refund_amount is not None:
        settle_refund(s, body["id"], oid, refund_amount)
    return orders.get_order(s, oid)


def _apply(s: Session, row: Any, status: str, provider_says: str | None) -> str:
    c, status_now = s.conn, row["status"]
    overridden = status == "failed" and status_now == "PENDING" and provider_says == "captured"
    if overridden:
        status = "succeeded"  # the provider holds the money: the failure report is stale
    if status == "failed":
        if status_now != "PENDING":
            return "ignored"  # a failure after a success (or after the end) changes nothing
        payments.record(
            c,
            row["id"],
            kind="charge",
            method="callback",
            status="declined",
            amount_minor=row["total_minor"],
        )
        orders.release_pending(c, s.operator, row, "FAILED", "provider callback: failed")
        _finish_key(c, row["id"], failed=True)
        return "applied"
    if status_now == "PAID":
        return "ignored"
    if status_now == "PENDING":
        expired = row["payment_state"] is None and row["hold_expires_us"] <= clock.now_us()
        if not expired:
            payments.record(
                c,
                row["id"],
                kind="charge",
                method="callback",
                status="captured",
                amount_minor=row["total_minor"],
            )
            orders.mark_paid(
                c,
                s.operator,
                row,
                method=row["pay_method"] or "card",
                reason="provider callback: failed, but the provider holds a captured charge"
                if overridden
                else "provider callback: succeeded",
            )
            _finish_key(c, row["id"], failed=False)
            return "applied"
        orders.release_pending(c, s.operator, row, "CANCELLED", "hold_expired")
        _finish_key(c, row["id"], failed=False)
    audit.record(
        c,
        s.operator,
        "order",
        row["id"],
        "late_success",
        reason="payment succeeded for an order that can no longer be paid; refunding",
    )
    return "refund"


def _finish_key(c: Any, order_id: int, *, failed: bool) -> None:
    rec = orders.idempotency.for_order(c, order_id)
    if rec is not None and not rec.finished:
        orders.idempotency.finish(
            c,
            rec.key,
            ErrorCode.PAYMENT_DECLINED if failed else None,
            f"payment for order {order_id} failed" if failed else None,
        )


def settle_refund(s: Session, callback_id: str, order_id: int, amount: int) -> None:
    """Refund a late success at the provider, then clear the pending mark (reconcile retries)."""
    orders.refund_order_payment(s, order_id, amount, "late provider success refunded")
    with transaction(s.conn) as c:
        c.execute(
            "UPDATE callbacks SET refund_pending = 0 WHERE callback_id = ? AND refund_pending = 1",
            (callback_id,),
        )


def pending_refunds(s: Session) -> list[tuple[str, int, int]]:
    rows = s.conn.execute(
        "SELECT callback_id, order_id, amount_minor FROM callbacks WHERE refund_pending = 1"
    ).fetchall()
    return [(r["callback_id"], r["order_id"], r["amount_minor"]) for r in rows]

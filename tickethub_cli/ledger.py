"""`payment ledger`: the card provider's own records, as its dashboard would show them.

Kept apart from our payments on purpose: comparing the two is how a double charge or a
double refund is found (doctor does it for every charge)."""

from __future__ import annotations

from typing import Any

from . import money
from . import validation as v
from .db import snapshot
from .session import Session


def charges(s: Session, order_id: object | None = None) -> list[dict[str, Any]]:
    oid = None if order_id is None else v.parse_id(order_id, "order")
    with snapshot(s.conn):
        if oid is not None and (
            s.conn.execute("SELECT 1 FROM orders WHERE id = ?", (oid,)).fetchone() is None
        ):
            from .errors import not_found

            raise not_found("order", oid)
        rows = s.provider.charges(oid)
    for row in rows:
        currency = row["currency"] or "EUR"
        row["amount"] = money.format_amount(row["amount_minor"], currency)
        row["refunded"] = money.format_amount(row["refunded_minor"], currency)
    return rows

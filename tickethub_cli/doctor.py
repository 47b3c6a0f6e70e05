"""`doctor`: check every invariant on the whole database; each broken one is a problem."""

from __future__ import annotations

from typing import Any

from .db import snapshot
from .session import Session

# (name, query returning one row per violation, message template)
CHECKS: list[tuple[str, str, str]] = [
    (
        "sold_matches_tickets",
        # one grouped pass over the tickets, not one scan per type
        "SELECT t.id, t.sold, coalesce(v.n, 0) AS n FROM ticket_types t LEFT JOIN"
        " (SELECT k.ticket_type_id, count(*) AS n FROM tickets k JOIN orders o"
        " ON o.id = k.order_id WHERE k.status = 'valid' AND o.status = 'PAID'"
        " GROUP BY k.ticket_type_id) v ON v.ticket_type_id = t.id WHERE t.sold <> coalesce(v.n, 0)",
        "ticket type {id}: sold is {sold} but {n} valid tickets of PAID orders exist",
    ),
    (
        "within_capacity",
        "SELECT id, sold, held, capacity FROM ticket_types"
        " WHERE sold + held > capacity OR sold < 0 OR held < 0",
        "ticket type {id}: sold {sold} + held {held} exceeds capacity {capacity} or is negative",
    ),
    (
        "held_matches_pending",
        "SELECT t.id, t.held, (SELECT coalesce(sum(l.quantity), 0) FROM order_lines l"
        " JOIN orders o ON o.id = l.order_id WHERE l.ticket_type_id = t.id"
        " AND o.status = 'PENDING') AS n FROM ticket_types t WHERE t.held <> n",
        "ticket type {id}: held is {held} but PENDING orders hold {n}",
    ),
    (
        "no_valid_ticket_unpaid",
        "SELECT k.id, k.order_id, o.status FROM tickets k JOIN orders o ON o.id = k.order_id"
        " WHERE k.status = 'valid' AND o.status <> 'PAID'",
        "ticket {id} is valid but its order {order_id} is {status}",
    ),
    (
        "paid_orders_have_tickets",
        "SELECT o.id, (SELECT coalesce(sum(quantity), 0) FROM order_lines l"
        " WHERE l.order_id = o.id) AS seats, (SELECT count(*) FROM tickets k"
        " WHERE k.order_id = o.id AND k.status = 'valid') AS n"
        " FROM orders o WHERE o.status = 'PAID' AND seats <> n",
        "PAID order {id} has {n} valid tickets for {seats} seats",
    ),
    (
        "audit_matches_status",
        "SELECT o.id, o.status, (SELECT a.to_state FROM audit_log a WHERE a.entity = 'order'"
        " AND a.entity_id = o.id AND a.to_state IS NOT NULL ORDER BY a.id DESC LIMIT 1) AS last"
        " FROM orders o WHERE last IS NULL OR last <> o.status",
        "order {id} is {status} but its audit trail ends in {last}",
    ),
    (
        "keys_have_orders",
        "SELECT k.key FROM idempotency_keys k LEFT JOIN orders o ON o.id = k.order_id"
        " WHERE o.id IS NULL",
        "idempotency key {key} has no order",
    ),
    (
        "pending_payments_settled",
        "SELECT o.id FROM orders o WHERE o.status <> 'PENDING' AND o.payment_state IS NOT NULL",
        "order {id} is final but still marks a payment in flight",
    ),
]


def check(s: Session) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    with snapshot(s.conn) as c:
        for name, sql, template in CHECKS:
            for row in c.execute(sql):
                values = dict(row)
                problems.append({"check": name, "message": template.format(**values), **values})
    return problems

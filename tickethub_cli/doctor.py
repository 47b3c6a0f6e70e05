"""`doctor`: check every invariant on the whole database; each broken one is a problem."""

from __future__ import annotations

from typing import Any

from .db import snapshot
from .session import Session

# (name, query returning one row per violation, message template)
CHECKS: list[tuple[str, str, str]] = [
    (
        "sold_matches_tickets",
        # one grouped pass over the tickets, not one scan per type. An admitted ticket keeps
        # its seat even when its order was cancelled: the person is inside.
        "SELECT t.id, t.sold, coalesce(v.n, 0) AS n FROM ticket_types t LEFT JOIN"
        " (SELECT k.ticket_type_id, count(*) AS n FROM tickets k JOIN orders o"
        " ON o.id = k.order_id WHERE (k.status = 'valid' AND o.status = 'PAID')"
        " OR (k.status = 'void' AND k.checked_in_at IS NOT NULL)"
        " GROUP BY k.ticket_type_id) v ON v.ticket_type_id = t.id WHERE t.sold <> coalesce(v.n, 0)",
        "ticket type {id}: sold is {sold} but {n} seats are taken by valid tickets of PAID"
        " orders and admitted tickets",
    ),
    (
        "admitted_within_capacity",
        "SELECT t.id, t.capacity, count(*) AS n FROM tickets k JOIN ticket_types t"
        " ON t.id = k.ticket_type_id WHERE k.checked_in_at IS NOT NULL"
        " GROUP BY t.id HAVING count(*) > t.capacity",
        "ticket type {id}: {n} people were admitted for {capacity} places",
    ),
    (
        "within_capacity",
        "SELECT id, sold, held, capacity FROM ticket_types"
        " WHERE sold + held > capacity OR sold < 0 OR held < 0",
        "ticket type {id}: sold {sold} + held {held} exceeds capacity {capacity} or is negative",
    ),
    (
        "held_matches_pending",
        # (a select-list alias cannot be used in WHERE on PostgreSQL: filter outside)
        "SELECT * FROM (SELECT t.id, t.held, (SELECT coalesce(sum(l.quantity), 0)"
        " FROM order_lines l JOIN orders o ON o.id = l.order_id WHERE l.ticket_type_id = t.id"
        " AND o.status = 'PENDING') AS n FROM ticket_types t) x WHERE held <> n",
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
        "SELECT * FROM (SELECT o.id, (SELECT coalesce(sum(quantity), 0) FROM order_lines l"
        " WHERE l.order_id = o.id) AS seats, (SELECT count(*) FROM tickets k"
        " WHERE k.order_id = o.id AND k.status = 'valid') AS n"
        " FROM orders o WHERE o.status = 'PAID') x WHERE seats <> n",
        "PAID order {id} has {n} valid tickets for {seats} seats",
    ),
    (
        "audit_matches_status",
        "SELECT * FROM (SELECT o.id, o.status, (SELECT a.to_state FROM audit_log a"
        " WHERE a.entity = 'order' AND a.entity_id = o.id AND a.to_state IS NOT NULL"
        " ORDER BY a.id DESC LIMIT 1) AS last FROM orders o) x"
        " WHERE last IS NULL OR last <> status",
        "order {id} is {status} but its audit trail ends in {last}",
    ),
    (
        "keys_have_orders",
        "SELECT k.key FROM idempotency_keys k LEFT JOIN orders o ON o.id = k.order_id"
        " WHERE o.id IS NULL",
        "idempotency key {key} has no order",
    ),
    (
        "final_orders_have_no_open_payment",
        "SELECT o.id, o.status, p.id AS payment FROM orders o JOIN payments p"
        " ON p.order_id = o.id WHERE o.status <> 'PENDING' AND p.status IN ('pending', 'unknown')",
        "order {id} is {status} but its payment {payment} is still open",
    ),
    (
        "money_matches_status",
        # kept = captured - refunded - refunds owed: PAID keeps its total, the others nothing
        "SELECT o.id, o.status, o.total_minor, coalesce(m.kept, 0) AS kept FROM orders o"
        " LEFT JOIN (SELECT order_id, sum(CASE WHEN status IN ('captured', 'refunded')"
        " THEN amount_minor ELSE 0 END - refunded_minor - CASE WHEN refund_state = 'requested'"
        " THEN amount_minor ELSE 0 END) AS kept FROM payments GROUP BY order_id) m"
        " ON m.order_id = o.id WHERE coalesce(m.kept, 0)"
        " <> CASE WHEN o.status = 'PAID' THEN o.total_minor ELSE 0 END",
        "order {id} is {status} (total {total_minor}) but keeps {kept} in captured payments",
    ),
    (
        "refunds_within_captures",
        "SELECT id, order_id, amount_minor, refunded_minor FROM payments"
        " WHERE refunded_minor > CASE WHEN status IN ('captured', 'refunded')"
        " THEN amount_minor ELSE 0 END",
        "payment {id} of order {order_id}: refunded {refunded_minor} of {amount_minor}",
    ),
    (
        "provider_agrees",
        # our final card payments against the provider's own record of the same charge
        "SELECT p.id, p.order_id, p.status, p.refunded_minor AS ours,"
        " coalesce(m.status, 'nothing') AS theirs, coalesce(m.refunded_minor, 0) AS refunded"
        " FROM payments p LEFT JOIN mockpay_charges m ON m.ref = p.provider_ref"
        " WHERE p.method = 'card' AND p.provider_ref IS NOT NULL"
        " AND p.status NOT IN ('pending', 'unknown') AND NOT ("
        " (p.status = 'captured' AND m.status = 'captured')"
        " OR (p.status = 'refunded' AND m.status = 'refunded'"
        " AND m.refunded_minor = p.refunded_minor)"
        " OR (p.status = 'declined' AND m.status = 'declined')"
        " OR (p.status = 'voided' AND coalesce(m.status, 'voided') IN ('voided', 'declined')))",
        "payment {id} of order {order_id} is {status} (refunded {ours}) but the provider"
        " says {theirs} (refunded {refunded})",
    ),
    (
        "provider_charges_recorded",
        # money the provider took that no payment of ours accounts for
        "SELECT m.ref, m.order_id, m.status, m.amount_minor FROM mockpay_charges m"
        " WHERE m.status IN ('captured', 'refunded') AND NOT EXISTS (SELECT 1 FROM payments p"
        " WHERE p.provider_ref = m.ref AND p.method = 'card')",
        "the provider holds a {status} charge {ref} of {amount_minor} for order {order_id}"
        " that no payment of ours records",
    ),
    (
        "one_open_payment",
        "SELECT order_id, count(*) AS n FROM payments WHERE status IN ('pending', 'unknown')"
        " GROUP BY order_id HAVING count(*) > 1",
        "order {order_id} has {n} open payments",
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

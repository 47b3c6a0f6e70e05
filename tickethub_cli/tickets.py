"""Tickets: issued with the PAID transition, voided with a cancellation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import clock, codes
from .db import Connection, Row

if TYPE_CHECKING:
    from .session import Session


def issue(conn: Connection, order_id: int, event_id: int, lines: Iterable[Row]) -> int:
    """Insert one ticket per seat of each line, inside the caller's PAID transaction."""
    now = clock.now_text()
    rows = []
    for line in lines:
        for _ in range(line["quantity"]):
            rows.append((order_id, line["ticket_type_id"], event_id, codes.generate(), now))
    # A collision of ~119 random bits will not happen; the UNIQUE index would refuse it anyway.
    conn.executemany(
        "INSERT INTO tickets (order_id, ticket_type_id, event_id, code, status, created_at)"
        " VALUES (?, ?, ?, ?, 'valid', ?)",
        rows,
    )
    return len(rows)


def void_for_order(conn: Connection, order_id: int) -> dict[int, int]:
    """Void the order's valid tickets; returns, per ticket type, how many seats go back on
    sale. An admitted ticket's seat does not: the person is inside (`sold` keeps counting it)."""
    counts = {
        r["ticket_type_id"]: r["n"]
        for r in conn.execute(
            "SELECT ticket_type_id, count(*) AS n FROM tickets WHERE order_id = ?"
            " AND status = 'valid' AND checked_in_at IS NULL GROUP BY ticket_type_id",
            (order_id,),
        )
    }
    conn.execute(
        "UPDATE tickets SET status = 'void' WHERE order_id = ? AND status = 'valid'", (order_id,)
    )
    return counts


def admitted_count(conn: Connection, order_id: int) -> int:
    return conn.execute(
        "SELECT count(*) FROM tickets WHERE order_id = ? AND status = 'valid'"
        " AND checked_in_at IS NOT NULL",
        (order_id,),
    ).fetchone()[0]


def ticket_dict(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "code": codes.pretty(row["code"]),
        "ticket_type_id": row["ticket_type_id"],
        "event_id": row["event_id"],
        "order_id": row["order_id"],
        "status": row["status"],
        "checked_in_at": row["checked_in_at"],
        "checked_in_gate": row["checked_in_gate"],
    }


def for_order(conn: Connection, order_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, order_id, ticket_type_id, event_id, code, status, checked_in_at,"
        " checked_in_gate FROM tickets WHERE order_id = ? ORDER BY id",
        (order_id,),
    ).fetchall()
    return [ticket_dict(r) for r in rows]


def get_by_code(conn: Connection, raw: str) -> dict[str, Any] | None:
    """The ticket a (possibly lower-case, spaced or dashed) code names, or None."""
    code = codes.canonical(raw[:4096])
    if not codes.is_well_formed(code):
        return None
    row = conn.execute(
        "SELECT t.id, t.order_id, t.ticket_type_id, t.event_id, t.code, t.status,"
        " t.checked_in_at, t.checked_in_gate, y.name AS type_name, e.name AS event_name,"
        " e.starts_at, e.venue, o.email, o.name AS buyer"
        " FROM tickets t JOIN ticket_types y ON y.id = t.ticket_type_id"
        " JOIN events e ON e.id = t.event_id JOIN orders o ON o.id = t.order_id"
        " WHERE t.code = ?",
        (code,),
    ).fetchone()
    if row is None:
        return None
    ticket = ticket_dict(row)
    ticket.update(
        type_name=row["type_name"],
        event_name=row["event_name"],
        starts_at=row["starts_at"],
        venue=row["venue"],
        email=row["email"],
        buyer=row["buyer"],
    )
    return ticket


def for_print(conn: Connection, order_id: int) -> list[dict[str, Any]]:
    """What a printed ticket says, for each valid ticket of an order: the ticket, its type
    and the price paid for it (the order line's, not today's price), the buyer, and the
    event as a dict of its row (so a column added later, such as `timezone`, comes along)."""
    rows = conn.execute(
        "SELECT t.id, t.order_id, t.event_id, t.code, y.name AS type_name,"
        " coalesce(l.unit_price_minor, y.price_minor) AS price_minor, o.currency,"
        " o.name AS buyer, o.email"
        " FROM tickets t JOIN ticket_types y ON y.id = t.ticket_type_id"
        " JOIN orders o ON o.id = t.order_id"
        " LEFT JOIN order_lines l ON l.order_id = t.order_id"
        " AND l.ticket_type_id = t.ticket_type_id"
        " WHERE t.order_id = ? AND t.status = 'valid' ORDER BY t.id",
        (order_id,),
    ).fetchall()
    events: dict[int, dict[str, Any]] = {}
    out = []
    for r in rows:
        if r["event_id"] not in events:
            row = conn.execute("SELECT * FROM events WHERE id = ?", (r["event_id"],)).fetchone()
            events[r["event_id"]] = dict(row)
        out.append({**dict(r), "event": events[r["event_id"]]})
    return out


def show(s: Session, raw: str) -> dict[str, Any]:
    """The ticket a code names, for a transport: INVALID_INPUT for a code that cannot be one
    (mistyped), NOT_FOUND for one no ticket has."""
    from . import codes as c
    from .errors import invalid, not_found

    if not c.is_well_formed(c.canonical(raw[:4096])):
        raise invalid("not a well-formed ticket code (mistyped?)", field="code")
    ticket = get_by_code(s.conn, raw)
    if ticket is None:
        raise not_found("ticket", c.pretty(c.canonical(raw)))
    return ticket

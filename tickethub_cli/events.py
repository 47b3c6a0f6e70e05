"""Events and their ticket types: the inventory an organizer sets up."""

from __future__ import annotations

from typing import Any

from . import audit, clock, money
from . import validation as v
from .db import Connection, Row, snapshot, transaction
from .errors import ErrorCode, TicketHubError, invalid, not_found, ref
from .session import Session

_TYPE_COLUMNS = (
    "id, event_id, name, price_minor, capacity, sold, held, max_per_order, sales, created_at,"
    " updated_at"
)


def _event_dict(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "venue": row["venue"],
        "starts_at": row["starts_at"],
        "currency": row["currency"],
        "created_at": row["created_at"],
        "status": row["status"],
        "cancel_reason": row["cancel_reason"],
        "timezone": row["timezone"],
    }


def _type_dict(row: Row, currency: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "event_id": row["event_id"],
        "name": row["name"],
        "price_minor": row["price_minor"],
        "price": money.format_amount(row["price_minor"], currency),
        "currency": currency,
        "capacity": row["capacity"],
        "sold": row["sold"],
        "held": row["held"],
        "available": row["capacity"] - row["sold"] - row["held"],
        "max_per_order": row["max_per_order"],
        "sales": row["sales"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def create_event(
    s: Session,
    *,
    name: str,
    starts_at: str,
    venue: str | None = None,
    currency: str = "EUR",
    timezone: str | None = None,
) -> dict[str, Any]:
    name = v.name(name, "event name")
    venue = v.optional_text(venue, "venue")
    zone = v.timezone(timezone) if timezone is not None else None
    starts = clock.fmt(clock.parse(starts_at, zone))
    zone = zone or "UTC"
    cur = money.parse_currency(currency)
    with transaction(s.conn) as c:
        event_id = c.execute(
            "INSERT INTO events (name, venue, starts_at, currency, timezone, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (name, venue, starts, cur, zone, clock.now_text()),
        ).fetchone()[0]
        audit.record(c, s.operator, "event", event_id, "create", data={"name": name})
    return get_event(s, event_id)


def update_event(
    s: Session,
    event_id: object,
    *,
    name: str | None = None,
    starts_at: str | None = None,
    venue: str | None = None,
    timezone: str | None = None,
) -> dict[str, Any]:
    """Correct an event's name, time, venue or zone (an empty venue clears it). The
    currency stays: prices and paid orders are in it. A called-off event is not changed."""
    eid = v.parse_id(event_id, "event")
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = v.name(name, "event name")
    if venue is not None:
        changes["venue"] = v.optional_text(venue, "venue") if venue.strip() else None
    if timezone is not None:
        changes["timezone"] = v.timezone(timezone)
    if not changes and starts_at is None:
        raise TicketHubError(
            ErrorCode.INVALID_INPUT,
            "nothing to change",
            hint=f"give {ref('name')}, {ref('starts_at')}, {ref('venue')} or {ref('timezone')}",
        )
    with transaction(s.conn) as c:
        row = event_row(c, eid)
        if row["status"] != "on_sale":
            raise TicketHubError(
                ErrorCode.INVALID_STATE,
                f"event {eid} is {row['status']}: a called-off event is not changed",
            )
        if starts_at is not None:  # a local time is the event's (new or present) zone's
            zone = changes.get("timezone", row["timezone"])
            changes["starts_at"] = clock.fmt(clock.parse(starts_at, zone))
        before = {col: row[col] for col in changes}
        if before != changes:
            assignments = ", ".join(f"{col} = ?" for col in changes)
            c.execute(f"UPDATE events SET {assignments} WHERE id = ?", (*changes.values(), eid))
            audit.record(
                c, s.operator, "event", eid, "update", data={"before": before, "after": changes}
            )
    return get_event(s, eid)


def event_row(conn: Connection, event_id: int) -> Row:
    row = conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        raise not_found("event", event_id)
    return row


def brief(s: Session, event_id: object) -> dict[str, Any]:
    """The event alone (no ticket types): what a one-line answer needs to name it and to
    show its times in its own zone."""
    return _event_dict(event_row(s.conn, v.parse_id(event_id, "event")))


def get_event(s: Session, event_id: object) -> dict[str, Any]:
    eid = v.parse_id(event_id, "event")
    with snapshot(s.conn) as c:
        event = _event_dict(event_row(c, eid))
        rows = c.execute(
            f"SELECT {_TYPE_COLUMNS} FROM ticket_types WHERE event_id = ? ORDER BY id", (eid,)
        ).fetchall()
    event["ticket_types"] = [_type_dict(r, event["currency"]) for r in rows]
    return event


def list_events(s: Session) -> list[dict[str, Any]]:
    rows = s.conn.execute(
        "SELECT e.*, count(t.id) AS types, coalesce(sum(t.capacity), 0) AS capacity,"
        " coalesce(sum(t.sold), 0) AS sold, coalesce(sum(t.held), 0) AS held"
        " FROM events e LEFT JOIN ticket_types t ON t.event_id = e.id"
        " GROUP BY e.id ORDER BY e.starts_at, e.id"
    ).fetchall()
    result = []
    for r in rows:
        event = _event_dict(r)
        event.update(
            ticket_type_count=r["types"],
            capacity=r["capacity"],
            sold=r["sold"],
            held=r["held"],
            available=r["capacity"] - r["sold"] - r["held"],
        )
        result.append(event)
    return result


def add_ticket_type(
    s: Session,
    event_id: object,
    *,
    name: str,
    price: str,
    capacity: object,
    max_per_order: object | None = None,
) -> dict[str, Any]:
    eid = v.parse_id(event_id, "event")
    name = v.name(name, "ticket type name")
    cap = v.int_in_range(capacity, "capacity", 0, v.MAX_CAPACITY)
    mpo = v.int_in_range(
        max_per_order if max_per_order is not None else v.MAX_QUANTITY,
        "max per order",
        1,
        v.MAX_QUANTITY,
    )
    with transaction(s.conn) as c:
        event = event_row(c, eid)
        _refuse_called_off(eid, event["status"])
        currency = event["currency"]
        price_minor = money.parse_amount(price, currency)
        _refuse_twin_name(c, eid, name)
        now = clock.now_text()
        type_id = c.execute(
            "INSERT INTO ticket_types (event_id, name, price_minor, capacity, max_per_order,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (eid, name, price_minor, cap, mpo, now, now),
        ).fetchone()[0]
        audit.record(
            c,
            s.operator,
            "ticket_type",
            type_id,
            "create",
            data={"event_id": eid, "name": name, "price_minor": price_minor, "capacity": cap},
        )
    return get_ticket_type(s, type_id)


def _refuse_called_off(event_id: int, status: str) -> None:
    """A called-off event's inventory stays as it was: a type added, re-opened or repriced
    after the refunds would show the event as on sale at the desk."""
    if status != "on_sale":
        raise TicketHubError(
            ErrorCode.INVALID_STATE,
            f"event {event_id} is {status}: a called-off event's ticket types are not changed",
        )


def _refuse_twin_name(
    conn: Connection, event_id: int, name: str, *, but: int | None = None
) -> None:
    """Two types of one event named alike ("VIP" and "vip ") cannot be told apart at the
    desk or in a report: the second is refused, the first can be changed instead."""
    wanted = " ".join(name.split()).casefold()
    for row in conn.execute(
        "SELECT id, name FROM ticket_types WHERE event_id = ? AND id IS NOT ?", (event_id, but)
    ):
        if " ".join(row["name"].split()).casefold() == wanted:
            raise TicketHubError(
                ErrorCode.INVALID_STATE,
                f"event {event_id} already has a ticket type named {row['name']!r}"
                f" (type {row['id']})",
                hint=f"change it with `tickethub ticket-type update {row['id']} …`",
            )


def get_ticket_type(s: Session, type_id: object) -> dict[str, Any]:
    tid = v.parse_id(type_id, "ticket type")
    row = s.conn.execute(
        "SELECT t.id, t.event_id, t.name, t.price_minor, t.capacity, t.sold, t.held,"
        " t.max_per_order, t.sales, t.created_at, t.updated_at, e.currency,"
        " e.name AS event_name FROM ticket_types t JOIN events e ON e.id = t.event_id"
        " WHERE t.id = ?",
        (tid,),
    ).fetchone()
    if row is None:
        raise not_found("ticket type", tid)
    return {**_type_dict(row, row["currency"]), "event_name": row["event_name"]}


def list_ticket_types(s: Session, event_id: object) -> list[dict[str, Any]]:
    return get_event(s, event_id)["ticket_types"]


def update_ticket_type(
    s: Session,
    type_id: object,
    *,
    name: str | None = None,
    price: str | None = None,
    capacity: object | None = None,
    max_per_order: object | None = None,
    sales: str | None = None,
) -> dict[str, Any]:
    tid = v.parse_id(type_id, "ticket type")
    changes: dict[str, Any] = {}
    if sales is not None:
        changes["sales"] = str(sales).strip().lower()
        if changes["sales"] not in ("open", "closed"):
            raise invalid(f"{ref('sales')} must be open or closed", field="sales")
    if name is not None:
        changes["name"] = v.name(name, "ticket type name")
    if capacity is not None:
        changes["capacity"] = v.int_in_range(capacity, "capacity", 0, v.MAX_CAPACITY)
    if max_per_order is not None:
        changes["max_per_order"] = v.int_in_range(max_per_order, "max per order", 1, v.MAX_QUANTITY)
    if price is None and not changes:
        raise TicketHubError(
            ErrorCode.INVALID_INPUT,
            "nothing to change",
            hint=f"give {ref('name')}, {ref('price')}, {ref('capacity')},"
            f" {ref('max_per_order')} or {ref('sales')}",
        )
    with transaction(s.conn) as c:
        row = c.execute(
            "SELECT t.*, e.currency, e.status AS event_status FROM ticket_types t"
            " JOIN events e ON e.id = t.event_id WHERE t.id = ?",
            (tid,),
        ).fetchone()
        if row is None:
            raise not_found("ticket type", tid)
        _refuse_called_off(row["event_id"], row["event_status"])
        if price is not None:
            changes["price_minor"] = money.parse_amount(price, row["currency"])
        if "name" in changes:
            _refuse_twin_name(c, row["event_id"], changes["name"], but=tid)
        if "capacity" in changes and changes["capacity"] < row["sold"] + row["held"]:
            raise TicketHubError(
                ErrorCode.INVALID_STATE,
                f"capacity {changes['capacity']} is below sold + held"
                f" ({row['sold']} + {row['held']}) of ticket type {tid}",
            )
        assignments = ", ".join(f"{col} = ?" for col in changes)
        c.execute(
            f"UPDATE ticket_types SET {assignments}, updated_at = ? WHERE id = ?",
            (*changes.values(), clock.now_text(), tid),
        )
        before = {col: row[col] for col in changes}
        audit.record(
            c, s.operator, "ticket_type", tid, "update", data={"before": before, "after": changes}
        )
    return get_ticket_type(s, tid)

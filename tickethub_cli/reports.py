"""The event report: sales, revenue, holds and check-ins per ticket type, scans by result,
admissions over time and codes tried at several gates. Built from counters and small
indexed aggregates, so it stays fast with a million tickets."""

from __future__ import annotations

import json
from typing import Any

from . import clock, events, money
from .checkin import RESULTS
from .db import Connection, snapshot
from .session import Session

BUCKET_US = 15 * 60 * 1_000_000
TYPE_COLUMNS = ("capacity", "sold", "held", "available", "revenue_minor", "checked_in")


def report(s: Session, event_id: object) -> dict[str, Any]:
    """One consistent snapshot: sold, revenue and check-ins are read at the same instant,
    so a sale committed mid-report cannot make the numbers disagree."""
    with snapshot(s.conn) as c:
        event = events.get_event(s, event_id)
        eid = event["id"]
        revenue = _revenue(c, eid)
        checked = _checked_in(c, eid)
        scans = _scans_by_result(c, eid)
        buckets = _admissions_per_bucket(c, eid)
        suspicious = _multi_gate(c, eid)
    currency = event["currency"]
    rows = [_type_row(t, revenue, checked, currency) for t in event.pop("ticket_types")]
    totals: dict[str, Any] = {key: sum(r[key] for r in rows) for key in TYPE_COLUMNS}
    totals["revenue"] = money.format_amount(totals["revenue_minor"], currency)
    return {
        "event": event,
        "ticket_types": rows,
        "totals": totals,
        "scans": scans,
        "admissions_per_15min": buckets,
        "multi_gate_codes": suspicious,
    }


def _type_row(
    t: dict[str, Any], revenue: dict[int, int], checked: dict[int, int], currency: str
) -> dict[str, Any]:
    return {
        "id": t["id"],
        "name": t["name"],
        "capacity": t["capacity"],
        "sold": t["sold"],
        "held": t["held"],
        "available": t["available"],
        "revenue_minor": revenue.get(t["id"], 0),
        "revenue": money.format_amount(revenue.get(t["id"], 0), currency),
        "checked_in": checked.get(t["id"], 0),
    }


def _revenue(c: Connection, eid: int) -> dict[int, int]:
    """Money kept: lines of PAID orders (a refunded order is CANCELLED and counts nothing)."""
    return {
        r["ticket_type_id"]: r["revenue"]
        for r in c.execute(
            "SELECT l.ticket_type_id, sum(l.quantity * l.unit_price_minor) AS revenue"
            " FROM orders o JOIN order_lines l ON l.order_id = o.id"
            " WHERE o.event_id = ? AND o.status = 'PAID' GROUP BY l.ticket_type_id",
            (eid,),
        )
    }


def _checked_in(c: Connection, eid: int) -> dict[int, int]:
    """Tickets inside now (an undone admission no longer counts); a partial index."""
    return {
        r["ticket_type_id"]: r["n"]
        for r in c.execute(
            "SELECT ticket_type_id, count(*) AS n FROM tickets"
            " WHERE event_id = ? AND checked_in_at IS NOT NULL GROUP BY ticket_type_id",
            (eid,),
        )
    }


def _scans_by_result(c: Connection, eid: int) -> dict[str, int]:
    """Every real scan attempt by result, zeros included (dry runs are not attempts)."""
    scans = dict.fromkeys(RESULTS, 0)
    for r in c.execute(
        "SELECT result, count(*) AS n FROM scans WHERE event_id = ? AND dry_run = 0"
        " GROUP BY result",
        (eid,),
    ):
        scans[r["result"]] = r["n"]
    return scans


def _admissions_per_bucket(c: Connection, eid: int) -> list[dict[str, Any]]:
    return [
        {"start": clock.text_of_us(r["bucket"] * BUCKET_US), "admitted": r["n"]}
        for r in c.execute(
            "SELECT at_us / ? AS bucket, count(*) AS n FROM scans WHERE event_id = ?"
            " AND result = 'ADMITTED' AND dry_run = 0 GROUP BY bucket ORDER BY bucket",
            (BUCKET_US, eid),
        )
    ]


# one JSON array of a group's values, per dialect (PostgreSQL's comes back parsed)
_JSON_ARRAY = {"sqlite": "json_group_array", "postgresql": "json_agg"}


def _json_list(value: Any) -> list[Any]:
    return json.loads(value) if isinstance(value, str) else list(value)


def _multi_gate(c: Connection, eid: int) -> list[dict[str, Any]]:
    """Fraud signals: one ticket tried at several gates (a shared screenshot), or one forged
    well-formed code (UNKNOWN: a typo cannot pass the check character) tried at several."""
    return [
        {
            "ticket_id": r["ticket_id"],
            "code": None if r["ticket_id"] is not None else r["input"],
            "gates": sorted(_json_list(r["gates"])),
            "attempts": r["attempts"],
        }
        for r in c.execute(
            "SELECT ticket_id, min(input) AS input,"
            f" {_JSON_ARRAY[c.dialect]}(DISTINCT coalesce(gate, '-')) AS gates,"
            " count(*) AS attempts"
            " FROM scans WHERE event_id = ? AND dry_run = 0"
            " AND (ticket_id IS NOT NULL OR result = 'UNKNOWN')"
            " GROUP BY ticket_id, CASE WHEN ticket_id IS NULL THEN input END"
            " HAVING count(DISTINCT coalesce(gate, '-')) > 1"
            # ties in the order SQLite groups them (forged codes by code, then tickets by
            # id): PostgreSQL would return its hash order
            " ORDER BY attempts DESC, coalesce(ticket_id, 0), min(input) LIMIT 50",
            (eid,),
        )
    ]

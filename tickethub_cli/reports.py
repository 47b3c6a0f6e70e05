"""The event report: sales, revenue, holds and check-ins per ticket type, scans by result,
admissions over time and codes tried at several gates. Built from counters and small
indexed aggregates, so it stays fast with a million tickets."""

from __future__ import annotations

from typing import Any

from . import clock, events, money
from .checkin import RESULT_EXIT
from .db import snapshot
from .session import Session

BUCKET_US = 15 * 60 * 1_000_000


def report(s: Session, event_id: object) -> dict[str, Any]:
    event = events.get_event(s, event_id)
    eid, currency = event["id"], event["currency"]
    with snapshot(s.conn) as c:
        revenue = {
            r["ticket_type_id"]: r["revenue"]
            for r in c.execute(
                "SELECT l.ticket_type_id, sum(l.quantity * l.unit_price_minor) AS revenue"
                " FROM orders o JOIN order_lines l ON l.order_id = o.id"
                " WHERE o.event_id = ? AND o.status = 'PAID' GROUP BY l.ticket_type_id",
                (eid,),
            )
        }
        checked = {
            r["ticket_type_id"]: r["n"]
            for r in c.execute(
                "SELECT ticket_type_id, count(*) AS n FROM tickets"
                " WHERE event_id = ? AND checked_in_at IS NOT NULL GROUP BY ticket_type_id",
                (eid,),
            )
        }
        scans = dict.fromkeys(RESULT_EXIT, 0)
        for r in c.execute(
            "SELECT result, count(*) AS n FROM scans WHERE event_id = ? AND dry_run = 0"
            " GROUP BY result",
            (eid,),
        ):
            scans[r["result"]] = r["n"]
        buckets = [
            {"start": clock.text_of_us(r["bucket"] * BUCKET_US), "admitted": r["n"]}
            for r in c.execute(
                "SELECT at_us / ? AS bucket, count(*) AS n FROM scans WHERE event_id = ?"
                " AND result = 'ADMITTED' AND dry_run = 0 GROUP BY bucket ORDER BY bucket",
                (BUCKET_US, eid),
            )
        ]
        suspicious = [
            {"ticket_id": r["ticket_id"], "gates": r["gates"].split(","), "attempts": r["attempts"]}
            for r in c.execute(
                "SELECT ticket_id, group_concat(DISTINCT coalesce(gate, '-')) AS gates,"
                " count(*) AS attempts FROM scans WHERE event_id = ? AND ticket_id IS NOT NULL"
                " AND dry_run = 0 GROUP BY ticket_id"
                " HAVING count(DISTINCT coalesce(gate, '-')) > 1 ORDER BY attempts DESC LIMIT 50",
                (eid,),
            )
        ]
    rows = []
    for t in event["ticket_types"]:
        rows.append(
            {
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
        )
    totals = {
        key: sum(r[key] for r in rows)
        for key in ("capacity", "sold", "held", "available", "revenue_minor", "checked_in")
    }
    totals["revenue"] = money.format_amount(totals["revenue_minor"], currency)
    event.pop("ticket_types")
    return {
        "event": event,
        "ticket_types": rows,
        "totals": totals,
        "scans": scans,
        "admissions_per_15min": buckets,
        "multi_gate_codes": suspicious,
    }

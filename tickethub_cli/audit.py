"""The append-only audit trail: who changed what, when, from which state to which, and why."""

from __future__ import annotations

import json
from typing import Any

from . import clock
from .db import Connection, write_later

_INSERT = (
    "INSERT INTO audit_log (at, operator, entity, entity_id, action, from_state, to_state,"
    " reason, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def record(
    conn: Connection,
    operator: str,
    entity: str,
    entity_id: int | None,
    action: str,
    *,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    at: str | None = None,
    group: dict[Any, Any] | None = None,
) -> None:
    """Append one row; `at` lets a caller that already read the clock (a gate scan) record
    the very instant it stored elsewhere; `group` (a group commit's, see db.write_later)
    lets the row be written with the group's others, before the same commit."""
    write_later(
        group,
        conn,
        _INSERT,
        (
            at or clock.now_text(),
            operator,
            entity,
            entity_id,
            action,
            from_state,
            to_state,
            reason,
            json.dumps(data, sort_keys=True) if data else None,
        ),
    )


def history(conn: Connection, entity: str, entity_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT from_state, to_state, at, operator, reason, action FROM audit_log"
        " WHERE entity = ? AND entity_id = ? AND to_state IS NOT NULL ORDER BY id",
        (entity, entity_id),
    ).fetchall()
    return [
        {
            "from": r["from_state"],
            "to": r["to_state"],
            "at": r["at"],
            "operator": r["operator"],
            "reason": r["reason"],
        }
        for r in rows
    ]

"""Seat counters on ticket types. Every change is one conditional UPDATE, so a race can
never take a counter past capacity or below zero; the schema's CHECKs are the backstop."""

from __future__ import annotations

from typing import Any

from . import clock
from .db import Connection


def hold(conn: Connection, type_id: int, quantity: int) -> bool:
    """Hold seats for a PENDING order; False when fewer than `quantity` are available."""
    cur = conn.execute(
        "UPDATE ticket_types SET held = held + ?, updated_at = ?"
        " WHERE id = ? AND capacity - sold - held >= ?",
        (quantity, clock.now_text(), type_id, quantity),
    )
    return cur.rowcount == 1


def release(conn: Connection, type_id: int, quantity: int) -> None:
    """Give held seats back (order failed, cancelled or expired)."""
    _must(
        conn.execute(
            "UPDATE ticket_types SET held = held - ?, updated_at = ? WHERE id = ? AND held >= ?",
            (quantity, clock.now_text(), type_id, quantity),
        ),
        f"release {quantity} held seats of ticket type {type_id}",
    )


def sell(conn: Connection, type_id: int, quantity: int) -> None:
    """Turn held seats into sold ones (order paid)."""
    _must(
        conn.execute(
            "UPDATE ticket_types SET held = held - ?, sold = sold + ?, updated_at = ?"
            " WHERE id = ? AND held >= ?",
            (quantity, quantity, clock.now_text(), type_id, quantity),
        ),
        f"sell {quantity} held seats of ticket type {type_id}",
    )


def unsell(conn: Connection, type_id: int, quantity: int) -> None:
    """Give sold seats back (paid order cancelled and refunded)."""
    _must(
        conn.execute(
            "UPDATE ticket_types SET sold = sold - ?, updated_at = ? WHERE id = ? AND sold >= ?",
            (quantity, clock.now_text(), type_id, quantity),
        ),
        f"return {quantity} sold seats of ticket type {type_id}",
    )


class CounterDrift(RuntimeError):
    """A counter disagrees with the orders: a bug, never user input. The transaction rolls
    back and `doctor` will show the cause."""


def _must(cur: Any, what: str) -> None:
    if cur.rowcount != 1:
        raise CounterDrift(f"cannot {what}: counters disagree with orders")

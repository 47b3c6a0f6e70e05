"""Payment providers. The mock behaves like an external, unreliable service.

The provider keeps its own durable ledger keyed by our order id (its idempotency key): asking
twice for the same order's charge returns the first answer, and our rollbacks or crashes never
undo a charge it took. It is only ever called between our transactions, never inside one.
Its commits skip their own fsync (see `db.transaction(durable=False)`): the ledger stands in
for a remote service, survives any crash of ours, and reaches the disk with our next commit.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal, Protocol

from . import clock
from .db import transaction

ChargeStatus = Literal["captured", "declined", "unknown", "voided", "refunded"]

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_TIMEOUT = "4000000000000119"


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    reference: str | None = None
    message: str = ""


class PaymentProvider(Protocol):
    def charge(self, order_id: int, amount_minor: int, card: str) -> ChargeResult: ...

    def lookup(self, order_id: int) -> ChargeResult | None: ...

    def void(self, order_id: int) -> ChargeResult: ...

    def refund(self, order_id: int, amount_minor: int) -> ChargeResult: ...


class MockProvider:
    """Test cards: 4242… succeeds, 4000000000000002 is declined, 4000000000000119 times out
    (unknown outcome; a later look-up finds it captured). Any other valid number succeeds."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def _row(self, order_id: int) -> sqlite3.Row | None:
        return self.conn.execute(
            "SELECT status FROM mockpay_charges WHERE order_id = ?", (order_id,)
        ).fetchone()

    def _result(self, order_id: int, status: str) -> ChargeResult:
        messages = {
            "declined": "card declined",
            "voided": "order was voided at the provider",
            "refunded": "charge was refunded",
        }
        return ChargeResult(status, f"mock_{order_id}", messages.get(status, ""))  # type: ignore[arg-type]

    def charge(self, order_id: int, amount_minor: int, card: str) -> ChargeResult:
        timed_out = False
        with transaction(self.conn, durable=False) as c:
            row = self._row(order_id)
            if row is not None:
                return self._result(order_id, row["status"])
            status = "declined" if card == CARD_DECLINED else "captured"
            timed_out = card == CARD_TIMEOUT
            now = clock.now_text()
            c.execute(
                "INSERT INTO mockpay_charges (order_id, status, amount_minor, card_last4,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (order_id, status, amount_minor, card[-4:], now, now),
            )
        if timed_out:
            return ChargeResult("unknown", None, "the provider did not answer in time")
        return self._result(order_id, status)

    def lookup(self, order_id: int) -> ChargeResult | None:
        row = self._row(order_id)
        return None if row is None else self._result(order_id, row["status"])

    def void(self, order_id: int) -> ChargeResult:
        """Make sure no charge can be taken for the order from now on; returns what stands."""
        with transaction(self.conn, durable=False) as c:
            row = self._row(order_id)
            if row is not None:
                return self._result(order_id, row["status"])
            now = clock.now_text()
            c.execute(
                "INSERT INTO mockpay_charges (order_id, status, amount_minor, created_at,"
                " updated_at) VALUES (?, 'voided', 0, ?, ?)",
                (order_id, now, now),
            )
        return self._result(order_id, "voided")

    def refund(self, order_id: int, amount_minor: int) -> ChargeResult:
        with transaction(self.conn, durable=False) as c:
            row = self._row(order_id)
            now = clock.now_text()
            if row is None:
                c.execute(
                    "INSERT INTO mockpay_charges (order_id, status, amount_minor, created_at,"
                    " updated_at) VALUES (?, 'refunded', ?, ?, ?)",
                    (order_id, amount_minor, now, now),
                )
            elif row["status"] == "captured":
                c.execute(
                    "UPDATE mockpay_charges SET status = 'refunded', updated_at = ?"
                    " WHERE order_id = ?",
                    (now, order_id),
                )
        return self._result(order_id, "refunded")


def record(
    conn: sqlite3.Connection,
    order_id: int,
    *,
    kind: str,
    method: str,
    status: str,
    amount_minor: int,
    reference: str | None = None,
) -> None:
    """Our own record of a payment event, written inside the order's transaction."""
    conn.execute(
        "INSERT INTO payments (order_id, kind, method, status, amount_minor, provider_ref, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (order_id, kind, method, status, amount_minor, reference, clock.now_text()),
    )

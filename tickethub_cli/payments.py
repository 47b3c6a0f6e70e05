"""Payments: every attempt to take money for an order (card or cash) is a row of its own, and
the provider is asked by that attempt's key, never by the order.

Why attempts and not a flag on the order: an order may see a declined card, then a card whose
outcome is unknown, then cash. Each has its own state and provider reference, so a late
answer about one of them can never be mistaken for another, and a capture that does not pay
the order (a late success, a second payment) is seen and refunded.

The money rules kept here:
- an order is PAID only when one captured payment covers it;
- a refund is asked for at most once per captured payment: `request_refund` is a
  conditional UPDATE (whoever comes second finds it asked), and the provider refunds by the
  charge's key, so a retry after a crash cannot refund twice;
- cash never goes near the card provider.

The mock provider behaves like an external, unreliable service with its own durable ledger,
keyed by the charge: asking twice for the same charge returns the first answer, and our
rollbacks or crashes never undo a charge it took. It is only ever called between our
transactions, never inside one, and it has its own connection whose commits skip their own
fsync (`db.connect_external`): the ledger stands in for a remote service, survives any crash
of ours, and reaches the disk with our next commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from . import audit, clock, faults, money
from .db import Connection, Row, transaction

ChargeStatus = Literal["captured", "declined", "unknown", "voided", "refunded"]
OPEN = ("pending", "unknown")  # a payment still being taken, or whose outcome is unknown

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_TIMEOUT = "4000000000000119"


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    reference: str | None = None
    message: str = ""


class PaymentProvider(Protocol):
    """A card provider, addressed by the charge's own key (`ref`)."""

    def charge(
        self, ref: str, order_id: int, amount_minor: int, currency: str, card: str
    ) -> ChargeResult: ...

    def lookup(self, ref: str) -> ChargeResult | None: ...

    def void(self, ref: str, order_id: int) -> ChargeResult: ...

    def refund(self, ref: str, order_id: int, amount_minor: int) -> ChargeResult: ...

    def notified(self, ref: str, order_id: int, amount_minor: int, currency: str) -> ChargeResult:
        """The provider's record behind a success callback it sent (the mock learns of it)."""
        ...

    def charges(self, order_id: int | None = None) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


_MESSAGES = {
    "declined": "card declined",
    "voided": "the charge was voided at the provider",
    "refunded": "the charge was refunded",
}


class MockProvider:
    """Test cards: 4242… succeeds, 4000000000000002 is declined, 4000000000000119 times out
    (unknown outcome; a later look-up finds it captured). Any other valid number succeeds."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn  # its own connection: the provider keeps its books apart from ours

    def close(self) -> None:
        self.conn.close()

    def _status(self, ref: str) -> str | None:
        row = self.conn.execute(
            "SELECT status FROM mockpay_charges WHERE ref = ?", (ref,)
        ).fetchone()
        return None if row is None else row["status"]

    @staticmethod
    def _result(ref: str, status: str) -> ChargeResult:
        return ChargeResult(status, ref, _MESSAGES.get(status, ""))  # type: ignore[arg-type]

    def _insert(
        self,
        ref: str,
        order_id: int,
        status: str,
        amount: int,
        *,
        currency: str | None = None,
        last4: str | None = None,
        refunded: int = 0,
    ) -> None:
        now = clock.now_text()
        self.conn.execute(
            "INSERT INTO mockpay_charges (ref, order_id, status, amount_minor, refunded_minor,"
            " currency, card_last4, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ref, order_id, status, amount, refunded, currency, last4, now, now),
        )

    def charge(
        self, ref: str, order_id: int, amount_minor: int, currency: str, card: str
    ) -> ChargeResult:
        with transaction(self.conn):
            existing = self._status(ref)
            if existing is not None:
                return self._result(ref, existing)
            status = "declined" if card == CARD_DECLINED else "captured"
            self._insert(ref, order_id, status, amount_minor, currency=currency, last4=card[-4:])
        if card == CARD_TIMEOUT:
            return ChargeResult("unknown", None, "the provider did not answer in time")
        return self._result(ref, status)

    def lookup(self, ref: str) -> ChargeResult | None:
        status = self._status(ref)
        return None if status is None else self._result(ref, status)

    def void(self, ref: str, order_id: int) -> ChargeResult:
        """From now on no charge can be taken with this key; returns what stands (a charge
        that already landed stays captured)."""
        with transaction(self.conn):
            existing = self._status(ref)
            if existing is not None:
                return self._result(ref, existing)
            self._insert(ref, order_id, "voided", 0)
        return self._result(ref, "voided")

    def refund(self, ref: str, order_id: int, amount_minor: int) -> ChargeResult:
        """Refund a captured charge; a second refund of the same charge returns the first."""
        with transaction(self.conn) as c:
            existing = self._status(ref)
            if existing is None:  # a charge from before version 2, refunded by order
                self._insert(ref, order_id, "refunded", amount_minor, refunded=amount_minor)
            elif existing == "captured":
                c.execute(
                    "UPDATE mockpay_charges SET status = 'refunded', refunded_minor = ?,"
                    " updated_at = ? WHERE ref = ? AND status = 'captured'",
                    (amount_minor, clock.now_text(), ref),
                )
            elif existing != "refunded":
                return self._result(ref, existing)
        return self._result(ref, "refunded")

    def notified(self, ref: str, order_id: int, amount_minor: int, currency: str) -> ChargeResult:
        with transaction(self.conn):
            existing = self._status(ref)
            if existing is not None:
                return self._result(ref, existing)
            self._insert(ref, order_id, "captured", amount_minor, currency=currency)
        return self._result(ref, "captured")

    def charges(self, order_id: int | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT ref, order_id, amount_minor, currency, status, refunded_minor, card_last4,"
            " created_at, updated_at FROM mockpay_charges"
        )
        args: tuple[Any, ...] = ()
        if order_id is not None:
            sql += " WHERE order_id = ?"
            args = (order_id,)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY created_at, ref", args)]


# ------------------------------------------------------------------ our record of attempts


def ref_for(order_id: int, number: int) -> str:
    """The charge's key at the provider: the order and the attempt's number within it, so
    answers never cross attempts and the key is known before the row is written."""
    return f"ord{order_id}-{number}"


def open_attempt(
    conn: Connection,
    order_id: int,
    method: str,
    amount: int,
    card: str | None,
    *,
    first: bool = False,
) -> tuple[int, str | None]:
    """A new attempt (pending), inside the caller's transaction; returns its id and provider
    key. The schema allows one open attempt per order, so two payers racing for one order
    cannot both get here. `first`: the order was made in this transaction (no attempt yet)."""
    number = 1
    if not first:
        number += conn.execute(
            "SELECT count(*) FROM payments WHERE order_id = ?", (order_id,)
        ).fetchone()[0]
    ref = ref_for(order_id, number) if method == "card" else None
    now = clock.now_text()
    payment_id = conn.execute(
        "INSERT INTO payments (order_id, method, amount_minor, status, provider_ref, card_last4,"
        " created_at, updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?) RETURNING id",
        (order_id, method, amount, ref, card[-4:] if card else None, now, now),
    ).fetchone()[0]
    assert payment_id is not None
    return payment_id, ref


def get(conn: Connection, payment_id: int) -> Row:
    """A payment, with its order's currency (the provider is asked in it)."""
    row = conn.execute(
        "SELECT p.*, o.currency FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.id = ?",
        (payment_id,),
    ).fetchone()
    assert row is not None, payment_id
    return row


def open_for(conn: Connection, order_id: int) -> Row | None:
    """The order's payment that is still being taken or whose outcome is unknown."""
    return conn.execute(
        "SELECT * FROM payments WHERE order_id = ? AND status IN ('pending', 'unknown')",
        (order_id,),
    ).fetchone()


def for_order(conn: Connection, order_id: int) -> list[Row]:
    return conn.execute(
        "SELECT * FROM payments WHERE order_id = ? ORDER BY id", (order_id,)
    ).fetchall()


def settle(conn: Connection, payment: Row, status: str) -> bool:
    """An open attempt gets its final status (captured, declined, voided) or becomes
    unknown; False when someone else settled it first (the caller then reads what stands)."""
    cur = conn.execute(
        "UPDATE payments SET status = ?, updated_at = ? WHERE id = ?"
        " AND status IN ('pending', 'unknown')",
        (status, clock.now_text(), payment["id"]),
    )
    return cur.rowcount == 1


def record_notified(conn: Connection, order_id: int, amount: int, ref: str) -> Row:
    """A capture the provider told us about (a success callback) for no attempt of ours."""
    now = clock.now_text()
    payment_id = conn.execute(
        "INSERT INTO payments (order_id, method, amount_minor, status, provider_ref, created_at,"
        " updated_at) VALUES (?, 'card', ?, 'captured', ?, ?, ?) RETURNING id",
        (order_id, amount, ref, now, now),
    ).fetchone()[0]
    assert payment_id is not None
    return get(conn, payment_id)


def find_known_capture(conn: Connection, order_id: int, amount: int) -> Row | None:
    """A card capture of this order we already know of, with this amount: a success callback
    about it tells us nothing new (however late, however often)."""
    return conn.execute(
        "SELECT * FROM payments WHERE order_id = ? AND method = 'card' AND amount_minor = ?"
        " AND status IN ('captured', 'refunded') ORDER BY id LIMIT 1",
        (order_id, amount),
    ).fetchone()


# ------------------------------------------------------------------------------ refunds


def request_refund(conn: Connection, operator: str, payment: Row, reason: str) -> bool:
    """Inside the caller's transaction: owe the customer this captured payment back. At most
    once per payment: a second request (a retry, a callback, reconcile) finds it asked."""
    cur = conn.execute(
        "UPDATE payments SET refund_state = 'requested', refund_reason = ?, updated_at = ?"
        " WHERE id = ? AND status = 'captured' AND refund_state IS NULL",
        (reason, clock.now_text(), payment["id"]),
    )
    if cur.rowcount != 1:
        return False
    audit.record(
        conn,
        operator,
        "order",
        payment["order_id"],
        "refund_requested",
        reason=reason,
        data={"payment_id": payment["id"], "amount_minor": payment["amount_minor"]},
    )
    return True


def requested_refunds(conn: Connection, order_id: int | None = None) -> list[int]:
    sql = "SELECT id FROM payments WHERE refund_state = 'requested'"
    args: tuple[Any, ...] = ()
    if order_id is not None:
        sql += " AND order_id = ?"
        args = (order_id,)
    return [r["id"] for r in conn.execute(sql + " ORDER BY id", args)]


def run_refunds(
    conn: Connection, provider: PaymentProvider, operator: str, payment_ids: list[int]
) -> list[int]:
    """Give back what was asked (outside any transaction): the provider refunds by the
    charge's key, so running this twice, or after a crash, refunds once. Returns the ids done."""
    done = []
    for payment_id in payment_ids:
        payment = get(conn, payment_id)
        if payment["refund_state"] != "requested":
            continue
        if payment["method"] == "card" and payment["provider_ref"]:
            result = provider.refund(
                payment["provider_ref"], payment["order_id"], payment["amount_minor"]
            )
            if result.status != "refunded":  # nothing there to give back (voided, declined)
                continue
        faults.point("after_refund")
        with transaction(conn) as c:
            cur = c.execute(
                "UPDATE payments SET status = 'refunded', refund_state = 'done',"
                " refunded_minor = amount_minor, updated_at = ?"
                " WHERE id = ? AND refund_state = 'requested'",
                (clock.now_text(), payment_id),
            )
            if cur.rowcount == 1:
                audit.record(
                    c,
                    operator,
                    "order",
                    payment["order_id"],
                    "refund",
                    reason=payment["refund_reason"],
                    data={"payment_id": payment_id, "amount_minor": payment["amount_minor"]},
                )
                done.append(payment_id)
    return done


# ------------------------------------------------------------------------------ showing


def payment_dict(row: Row) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row["id"],
        "method": row["method"],
        "amount_minor": row["amount_minor"],
        "status": row["status"],
        "refunded_minor": row["refunded_minor"],
        "refund": row["refund_state"],
        "created_at": row["created_at"],
    }
    if row["method"] == "card":
        body["card_last4"] = row["card_last4"]
        body["provider_ref"] = row["provider_ref"]
    return body


def describe(payment: dict[str, Any], currency: str, *, just_now: bool = False) -> str:
    """One line a cashier can act on: what was taken, and what was (or is to be) given back.
    `just_now`: the refund was made by this very command, so cash is still to be handed over."""
    amount = f"{money.format_amount(payment['amount_minor'], currency)} {currency}"
    where = (
        f"card …{payment['card_last4']}"
        if payment["method"] == "card" and payment.get("card_last4")
        else "card"
        if payment["method"] == "card"
        else "cash"
    )
    if payment["refund"] == "done":
        if payment["method"] == "cash":
            return f"hand back {amount} cash" if just_now else f"handed back {amount} cash"
        return f"refunded {amount} to {where}"
    if payment["refund"] == "requested":
        if payment["method"] == "cash":
            return f"hand back {amount} cash"
        return f"refund of {amount} to {where} is owed (run `tickethub reconcile`)"
    words = {
        "pending": f"{amount} by {where}: being taken",
        "unknown": f"{amount} by {where}: outcome unknown, do not take another payment",
        "captured": f"{amount} taken by {where}",
        "declined": f"{amount} by {where}: declined",
        "voided": f"{amount} by {where}: voided, nothing taken",
    }
    return words.get(payment["status"], f"{amount} by {where}: {payment['status']}")

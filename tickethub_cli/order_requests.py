"""What a buyer asks for: items, buyer, payment. Parsed and validated before anything is
written, and fingerprinted for idempotency (the key covers the whole request)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from . import idempotency
from . import validation as v
from .errors import invalid, ref

MAX_HOLD_MINUTES = 7 * 24 * 60

PAY_REQUIRED = f"{ref('pay')} is required: card (with {ref('card')} NUMBER) or cash"
CARD_WITHOUT_CARD_PAY = f"{ref('card')} goes with {ref('pay')} card"


class Item(BaseModel):
    model_config = ConfigDict(frozen=True)
    ticket_type_id: int
    quantity: int


class OrderRequest(BaseModel):
    """A validated purchase or reservation. Built by `OrderRequest.parse`, which refuses bad
    input before anything is written."""

    model_config = ConfigDict(frozen=True)
    items: tuple[Item, ...]
    email: str | None = None
    name: str | None = None
    pay: Literal["card", "cash"] | None = None
    card: str | None = None
    idempotency_key: str | None = None
    hold_minutes: float | None = None

    @classmethod
    def parse(
        cls,
        *,
        items: list[str] | list[tuple[object, object]],
        email: str | None = None,
        name: str | None = None,
        pay: str | None = None,
        card: str | None = None,
        idempotency_key: str | None = None,
        hold_minutes: object | None = None,
        require_pay: bool = True,
    ) -> OrderRequest:
        parsed = parse_items(items)
        pay = normal_pay(pay)
        if pay is None or pay == "":
            if require_pay:
                raise invalid(PAY_REQUIRED, field="pay")
        elif pay not in ("card", "cash"):
            raise invalid(f"{ref('pay')} must be card or cash, got {pay[:20]!r}", field="pay")
        card_digits = None
        if pay == "card":
            card_digits = v.card_number(card)
        elif card:
            raise invalid(CARD_WITHOUT_CARD_PAY, field="card")
        try:
            return cls(
                items=tuple(Item(ticket_type_id=t, quantity=q) for t, q in parsed),
                email=v.email(email),
                name=v.optional_text(name, "buyer name"),
                pay=pay or None,
                card=card_digits,
                idempotency_key=(
                    idempotency.check_key(idempotency_key) if idempotency_key is not None else None
                ),
                hold_minutes=parse_hold_minutes(hold_minutes),
            )
        except ValidationError as exc:
            raise invalid(exc.errors()[0]["msg"]) from None

    def fingerprint(self, op: str) -> str:
        return idempotency.fingerprint(
            {
                "op": op,
                "items": sorted((i.ticket_type_id, i.quantity) for i in self.items),
                "email": self.email,
                "name": self.name,
                "pay": self.pay,
                "card": card_mask(self.card),
            }
        )


def card_mask(card: str | None) -> str | None:
    """What may be kept of a card number anywhere (PCI DSS): the first six and last four
    digits. The fingerprint of a request holds no more, so the whole number cannot be found
    again by trying the middle digits."""
    if card is None:
        return None
    return f"{card[:6]}…{card[-4:]}"


def normal_pay(pay: str | None) -> str | None:
    """`--pay CASH` is `--pay cash`, as `--status paid` is `--status PAID`."""
    return pay.strip().lower() if isinstance(pay, str) else pay


def parse_items(raw: list[str] | list[tuple[object, object]]) -> list[tuple[int, int]]:
    """ "TYPE_ID:QTY" strings (or pairs) into merged (type, quantity) pairs."""
    if not raw:
        raise invalid(f"give at least one {ref('item')} TYPE_ID:QUANTITY", field="item")
    merged: dict[int, int] = {}
    for entry in raw:
        if isinstance(entry, tuple):
            type_text, qty_text = str(entry[0]), entry[1]
        else:
            if ":" not in entry:
                raise invalid(
                    f"item {entry[:40]!r} must be TYPE_ID:QUANTITY",
                    hint=f"e.g. {ref('item')} 3:2",
                    field="item",
                )
            type_text, qty_text = entry.split(":", 1)
        type_text = type_text.strip()
        if not (type_text.isascii() and type_text.isdigit()) or len(type_text) > 18:
            raise invalid(f"ticket type id {type_text[:40]!r} must be a number")
        qty = v.int_in_range(qty_text, "quantity", 1, v.MAX_QUANTITY)
        type_id = int(type_text)
        merged[type_id] = merged.get(type_id, 0) + qty
        if merged[type_id] > v.MAX_QUANTITY:
            raise invalid(f"quantity of ticket type {type_id} exceeds {v.MAX_QUANTITY}")
    return sorted(merged.items())


def parse_hold_minutes(value: object | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        minutes = Decimal(str(value).strip())
    except InvalidOperation:
        raise invalid(f"hold minutes must be a number, got {str(value)[:20]!r}") from None
    if not minutes.is_finite() or not 0 < minutes <= MAX_HOLD_MINUTES:
        raise invalid(f"hold minutes must be above 0 and at most {MAX_HOLD_MINUTES}")
    return float(minutes)

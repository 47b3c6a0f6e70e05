"""Request bodies (validated by pydantic, strict: a JSON number where a decimal string is
expected is refused, and so is an unknown field) and response shapes for /openapi.json.

Prices are decimal strings ("25.00"), as on the command line; responses carry *_minor.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _no_surrogates(value: str) -> str:
    """A lone surrogate (JSON "\\ud800") is no text any database or terminal can take."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be UTF-8 text") from None
    return value


Text = Annotated[str, AfterValidator(_no_surrogates)]
Decimal = Annotated[
    str, AfterValidator(_no_surrogates), Field(description='a decimal string, e.g. "25.00"')
]


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class EventIn(Strict):
    name: Text
    starts_at: Text
    venue: Text | None = None
    currency: Text | None = None
    timezone: Text | None = None


class TicketTypeIn(Strict):
    name: Text
    price: Decimal
    capacity: int
    max_per_order: int | None = None


class TicketTypePatch(Strict):
    capacity: int | None = None
    price: Decimal | None = None
    name: Text | None = None
    max_per_order: int | None = None
    sales: Literal["open", "closed"] | None = None


class Item(Strict):
    ticket_type_id: int
    quantity: int


class OrderIn(Strict):
    items: list[Item] = Field(max_length=1000)
    email: Text | None = None
    name: Text | None = None


class PurchaseIn(OrderIn):
    pay: Text = Field(description="card or cash")
    card: Text | None = None


class PayIn(Strict):
    pay: Text = Field(description="card or cash")
    card: Text | None = None


class CancelIn(Strict):
    reason: Text | None = None
    force: bool = False


class ValidateIn(Strict):
    code: str
    event_id: int
    gate: Text | None = None
    dry_run: bool = False


class UndoIn(Strict):
    code: str
    event_id: int
    reason: Text | None = None


# --------------------------------------------------------------------------- responses
# Loose on purpose (extra fields allowed): they document the shape; the services build it.


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(Open):
    code: str
    message: str
    order_id: int | None = None


class ErrorOut(Open):
    error: ErrorDetail


class TicketTypeOut(Open):
    id: int
    event_id: int
    name: str
    price_minor: int
    capacity: int
    sold: int
    held: int
    available: int


class EventBody(Open):
    id: int
    name: str
    starts_at: str
    currency: str
    ticket_types: list[TicketTypeOut] = []


class EventOut(Open):
    event: EventBody


class EventsOut(Open):
    events: list[EventBody]


class TicketTypeEnvelope(Open):
    ticket_type: TicketTypeOut


class OrderBody(Open):
    id: int
    status: str
    total_minor: int
    currency: str


class OrderOut(Open):
    order: OrderBody
    replayed: bool = False


class OrdersOut(Open):
    orders: list[dict[str, Any]]
    total: int
    next_cursor: str | None


class ScanOut(Open):
    result: str
    ticket_id: int | None
    event_id: int | None
    first_used_at: str | None
    gate: str | None


class UndoOut(Open):
    result: Literal["UNDONE"]
    ticket_id: int


class TicketOut(Open):
    ticket: dict[str, Any]


class ReportOut(Open):
    event: dict[str, Any]
    ticket_types: list[dict[str, Any]]
    totals: dict[str, Any]


class HealthOut(Open):
    ok: bool
    backend: str
    schema_version: int

"""Typed errors. Every failure the user can cause is a value with a stable code; each
transport maps codes its own way (the CLI to exit codes, in cli/errors.py)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INTERNAL = "INTERNAL"
    INVALID_INPUT = "INVALID_INPUT"
    USAGE = "USAGE"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    NOT_FOUND = "NOT_FOUND"
    IDEMPOTENCY_MISMATCH = "IDEMPOTENCY_MISMATCH"
    INVALID_STATE = "INVALID_STATE"
    IN_PROGRESS = "IN_PROGRESS"
    SOLD_OUT = "SOLD_OUT"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    PAYMENT_UNKNOWN = "PAYMENT_UNKNOWN"
    DB_BUSY = "DB_BUSY"
    DB_ERROR = "DB_ERROR"
    BATCH_PARTIAL = "BATCH_PARTIAL"
    INVARIANT_VIOLATION = "INVARIANT_VIOLATION"
    # over HTTP (tickethub serve): who may act, and how often
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    RATE_LIMITED = "RATE_LIMITED"


# An input field named inside a message or hint: each transport spells it its own way (the
# CLI as its flag, `--pay`; HTTP as the body's key), so the domain never names a flag.
_MARK = "\x1f"  # a control character: refused in stored text, escaped by repr()


def ref(field: str) -> str:
    """A reference to the input field `field` (a domain name: "card", "max_per_order")."""
    return f"{_MARK}{field}{_MARK}"


def plain(field: str) -> str:
    """The transport-neutral spelling of a field: its name."""
    return field


def spell(text: str, speller: Callable[[str], str] = plain) -> str:
    """`text` with each field reference spelled by `speller`."""
    if _MARK not in text:
        return text
    parts = text.split(_MARK)
    return "".join(speller(p) if i % 2 and p.isidentifier() else p for i, p in enumerate(parts))


class TicketHubError(Exception):
    """An error the user (or the world) caused: a stable `code` (what a transport maps to an
    exit code or an HTTP status), a message, the offending input `field` if one is to blame,
    an optional hint and details (order_id, idempotency_key, payment_may_exist, …).

    Messages and hints may name fields with `ref()`; `message`/`hint` spell them plainly,
    `text(speller)`/`hint_text(speller)`/`to_dict(speller)` as a transport does. Hints that
    name commands of one transport belong to that transport, not here."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        field: str | None = None,
        order_id: int | None = None,
        hint: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spell(message))
        self.code = code
        self.template = message
        self.field = field
        self.order_id = order_id
        self.hint_template = hint
        self.details = details or {}

    @property
    def message(self) -> str:
        return spell(self.template)

    @property
    def hint(self) -> str | None:
        return self.hint_text()

    def text(self, speller: Callable[[str], str] = plain) -> str:
        return spell(self.template, speller)

    def hint_text(self, speller: Callable[[str], str] = plain) -> str | None:
        return spell(self.hint_template, speller) if self.hint_template else None

    def to_dict(
        self, speller: Callable[[str], str] = plain, *, hint: str | None = None
    ) -> dict[str, Any]:
        """The error object: code, message, order_id and hint when there are any, then the
        details. `hint` replaces the error's own (a transport's hint for this error)."""
        body: dict[str, Any] = {"code": str(self.code), "message": self.text(speller)}
        if self.order_id is not None:
            body["order_id"] = self.order_id
        hint = hint or self.hint_text(speller)
        if hint:
            body["hint"] = hint
        body.update(self.details)
        return body

    def __repr__(self) -> str:
        return f"TicketHubError({self.code}, {self.message!r})"


def invalid(message: str, *, hint: str | None = None, field: str | None = None) -> TicketHubError:
    return TicketHubError(ErrorCode.INVALID_INPUT, message, hint=hint, field=field)


def not_found(what: str, ident: object) -> TicketHubError:
    return TicketHubError(ErrorCode.NOT_FOUND, f"{what} {ident} not found")


def invalid_state(
    message: str, *, order_id: int | None = None, field: str | None = None
) -> TicketHubError:
    return TicketHubError(ErrorCode.INVALID_STATE, message, order_id=order_id, field=field)

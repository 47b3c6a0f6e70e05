"""Typed errors. Every failure the user can cause is a value with a code and an exit code."""

from __future__ import annotations

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


EXIT_CODES: dict[ErrorCode, int] = {
    ErrorCode.INTERNAL: 1,
    ErrorCode.INVALID_INPUT: 2,
    ErrorCode.USAGE: 2,
    ErrorCode.SIGNATURE_INVALID: 2,
    ErrorCode.AMOUNT_MISMATCH: 2,
    ErrorCode.NOT_FOUND: 3,
    ErrorCode.IDEMPOTENCY_MISMATCH: 4,
    ErrorCode.INVALID_STATE: 4,
    ErrorCode.IN_PROGRESS: 4,
    ErrorCode.SOLD_OUT: 5,
    ErrorCode.PAYMENT_DECLINED: 6,
    ErrorCode.PAYMENT_UNKNOWN: 6,
    ErrorCode.DB_BUSY: 7,
    ErrorCode.DB_ERROR: 7,
    ErrorCode.BATCH_PARTIAL: 8,
    ErrorCode.INVARIANT_VIOLATION: 9,
    ErrorCode.UNAUTHORIZED: 2,
    ErrorCode.FORBIDDEN: 2,
    ErrorCode.RATE_LIMITED: 4,
}


class TicketHubError(Exception):
    """An error the user (or the world) caused, rendered as one line and an exit code."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        order_id: int | None = None,
        hint: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.order_id = order_id
        self.hint = hint
        self.details = details or {}

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.code]

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.order_id is not None:
            body["order_id"] = self.order_id
        if self.hint:
            body["hint"] = self.hint
        body.update(self.details)
        return body

    def __repr__(self) -> str:
        return f"TicketHubError({self.code}, {self.message!r})"


def invalid(message: str, *, hint: str | None = None) -> TicketHubError:
    return TicketHubError(ErrorCode.INVALID_INPUT, message, hint=hint)


def not_found(what: str, ident: object) -> TicketHubError:
    return TicketHubError(ErrorCode.NOT_FOUND, f"{what} {ident} not found")


def invalid_state(message: str, *, order_id: int | None = None) -> TicketHubError:
    return TicketHubError(ErrorCode.INVALID_STATE, message, order_id=order_id)

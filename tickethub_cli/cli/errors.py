"""How the CLI shows errors: the one table from error code (and scan result) to exit code,
input fields spelled as flags, and the hints that name commands of this CLI.

The domain's errors carry a code, the offending field and details; each transport maps
them its own way. This module is the CLI's way (the HTTP server has its own)."""

from __future__ import annotations

from typing import Any

from ..errors import ErrorCode, TicketHubError

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
    # from a server (`--server URL --token T`): a token refused is bad input, a rate limit
    # a conflict with the current state (wait, then scan again)
    ErrorCode.UNAUTHORIZED: 2,
    ErrorCode.FORBIDDEN: 2,
    ErrorCode.RATE_LIMITED: 4,
}
# `validate` exits with its scan's result (a rejection is not an error: the gate goes on)
RESULT_EXIT_CODES: dict[str, int] = {
    "ADMITTED": 0,
    "ALREADY_USED": 10,
    "UNKNOWN": 11,
    "WRONG_EVENT": 12,
    "VOID": 13,
    "MALFORMED": 14,
}


def exit_code(code: ErrorCode | str) -> int:
    return EXIT_CODES[ErrorCode(code)]


def result_exit_code(result: str) -> int:
    return RESULT_EXIT_CODES[result]


def flag(field: str) -> str:
    """The option that gives a field on the command line: max_per_order is --max-per-order."""
    return "--" + field.replace("_", "-")


def hint(err: TicketHubError) -> str | None:
    """The CLI's hint for an error: one naming this CLI's commands where the situation has
    one (keyed by code, field and details), else the domain's own, flags spelled."""
    own = _COMMAND_HINTS.get((err.code, err.field))
    key, oid = err.details.get("idempotency_key"), err.order_id
    if err.details.get("payment_may_exist"):
        return (
            f"do not take another payment; retry with --idempotency-key {key} (it will"
            f" not charge again), or run `tickethub reconcile --order {oid}`"
        )
    if err.code == ErrorCode.PAYMENT_UNKNOWN and key is not None:
        return (
            f"do not take another payment; retry with --idempotency-key {key}, or run"
            f" `tickethub reconcile --order {oid}`; to give up, `tickethub order cancel"
            f" {oid}` (it asks the provider first)"
        )
    if err.code == ErrorCode.PAYMENT_DECLINED and key is not None and not err.hint_template:
        again = "sell again with another card or cash"
        if not str(key).startswith("auto-"):  # a key the seller chose: it stays this order
            again += f" and a new --idempotency-key ({key} stays this declined order)"
        return f"nothing was charged and the seats went back; {again}"
    if own is not None and err.hint_template:  # the domain says a hint helps here
        return own.format(order_id=oid)
    return err.hint_text(flag)


# (code, field) → the CLI's words for a domain hint that names commands
_COMMAND_HINTS: dict[tuple[ErrorCode, str | None], str] = {
    (ErrorCode.NOT_FOUND, "db"): "create it with `tickethub --db FILE_OR_URL init` (on"
    " PostgreSQL, `createdb NAME` first)",
    (ErrorCode.DB_ERROR, "db"): "point --db at a database file or a postgresql:// URL, or"
    " create one with `tickethub init`",
    (ErrorCode.IN_PROGRESS, "pay"): "look at it with `tickethub order show {order_id}`, or"
    " settle it with `tickethub reconcile --order {order_id}`",
}


def message(err: TicketHubError) -> str:
    return err.text(flag)


def as_dict(err: TicketHubError) -> dict[str, Any]:
    """The JSON error object the CLI prints."""
    return err.to_dict(flag, hint=hint(err))

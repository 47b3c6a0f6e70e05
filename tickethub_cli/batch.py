"""Batch sales: many purchases from CSV or JSON Lines, each row its own idempotent purchase.

Rows run in input order through the same service as `purchase`; a failing row does not stop
the rest (unless asked). Re-running a file is safe: finished rows replay, a row a killed run
left in flight resumes, nothing is sold twice.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from . import bounded, orders
from .errors import ErrorCode, TicketHubError, invalid
from .session import Session

COLUMNS = ("idempotency_key", "ticket_type_id", "quantity", "email", "name", "pay", "card")
REQUIRED = ("idempotency_key", "ticket_type_id", "quantity", "pay")
JSON_FIELDS = (*COLUMNS, "items")
MAX_LINE = 100_000  # bytes per line; a real row is a few hundred
SHOWN_FAILURES = 20  # failed rows kept for the human summary; the rest are only counted


@dataclass
class Row:
    number: int
    data: dict[str, Any] | None
    problem: str | None = None


@dataclass
class RowResult:
    row: int
    idempotency_key: str | None
    ok: bool
    replayed: bool = False
    order: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # the error object (as the caller's transport shows it)
    failure: TicketHubError | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "row": self.row,
            "idempotency_key": self.idempotency_key,
            "ok": self.ok,
            "replayed": self.replayed,
        }
        if self.ok:
            body["order"] = self.order
        else:
            body["error"] = self.error
        return body


@dataclass
class Summary:
    rows: int = 0
    ok: int = 0
    failed: int = 0
    replayed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    failures: list[RowResult] = field(default_factory=list)  # the first SHOWN_FAILURES

    def add(self, result: RowResult) -> None:
        self.rows += 1
        if result.ok:
            self.ok += 1
            self.replayed += int(result.replayed)
        else:
            self.failed += 1
            code = (result.error or {}).get("code", "INTERNAL")
            self.errors[code] = self.errors.get(code, 0) + 1
            if len(self.failures) < SHOWN_FAILURES:  # memory stays bounded on any file
                self.failures.append(result)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "ok": self.ok,
            "failed": self.failed,
            "replayed": self.replayed,
            "errors": self.errors,
        }


@dataclass
class Line:
    """One physical line of the input: its text, or why it cannot be read."""

    number: int
    text: str | None
    problem: str | None = None
    start: bytes = b""  # the first bytes of an unreadable line, to tell JSON Lines from CSV

    @property
    def blank(self) -> bool:
        return self.text is not None and not self.text.strip()


def _text_lines(stream: BinaryIO) -> Iterator[Line]:
    """Read line by line with a bound: a line too long, with NUL bytes or not UTF-8 becomes
    a Line with a problem (that row fails on its own); memory stays bounded whatever arrives."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            _skip_rest_of_line(stream)
            yield Line(number, None, f"line is longer than {MAX_LINE:,} bytes", raw[:64])
        elif b"\x00" in raw:
            yield Line(number, None, "line contains NUL bytes", raw[:64])
        else:
            try:
                yield Line(number, raw.decode("utf-8-sig" if number == 1 else "utf-8"))
            except UnicodeDecodeError:
                yield Line(number, None, "line is not UTF-8 text", raw[:64])


def _skip_rest_of_line(stream: BinaryIO) -> None:
    while True:
        chunk = stream.readline(MAX_LINE)
        if not chunk or chunk.endswith(b"\n"):
            return


def read_rows(stream: BinaryIO) -> Iterator[Row]:
    """Detect the format from the first non-blank line and yield rows as they arrive. Every
    non-blank line after a CSV header (every non-blank line of JSON Lines) is one data row:
    a broken line fails as its own row and never swallows the rows after it."""
    lines = _text_lines(stream)
    first = next((line for line in lines if not line.blank), None)
    if first is None:
        raise invalid("the batch file is empty", hint=f"CSV needs a header: {','.join(COLUMNS)}")
    if first.text is None and not first.start.lstrip().startswith(b"{"):
        raise invalid(f"line {first.number}: {first.problem}: not a CSV or JSON Lines file")
    if first.text is None or first.text.lstrip().startswith("{"):
        return _json_rows(_chain([first], lines))  # an unreadable first row fails alone
    return _csv_rows(_csv_header(first.text), lines)


def _chain(head: list[Line], tail: Iterable[Line]) -> Iterator[Line]:
    yield from head
    yield from tail


def _json_rows(lines: Iterator[Line]) -> Iterator[Row]:
    number = 0
    for line in lines:
        if line.blank:
            continue
        number += 1
        if line.text is None:
            yield Row(number, None, line.problem)
            continue
        try:
            data = bounded.load_json(line.text, "row")
        except TicketHubError as err:
            yield Row(number, None, err.message)
            continue
        if not isinstance(data, dict):
            yield Row(number, None, "a JSON Lines row must be an object")
            continue
        unknown = sorted(set(data) - set(JSON_FIELDS))
        if unknown:
            yield Row(number, data, f"unknown field(s): {', '.join(unknown)}")
            continue
        yield Row(number, data)


def _csv_cells(text: str) -> list[str]:
    """One CSV record from one line. No field may hold a line break (names, emails and keys
    refuse control characters), so a quote left open is this line's error, never a licence
    to read the following rows into one field."""
    try:
        records = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise invalid(f"malformed CSV line ({exc}); quotes must be balanced on one line") from None
    if len(records) != 1:
        raise invalid("malformed CSV line: a record must be one line")
    return records[0]


def _csv_header(text: str) -> list[str]:
    header = [c.strip().lower() for c in _csv_cells(text)]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(repr(c[:30]) for c in unknown)}")
        if len(set(header)) != len(header):
            parts.append("repeated column names")
        raise invalid(
            f"bad CSV header: {'; '.join(parts)}",
            hint=f"expected columns: {','.join(COLUMNS)} (email, name, card optional)",
        )
    return header


def _csv_rows(header: list[str], lines: Iterator[Line]) -> Iterator[Row]:
    number = 0
    for line in lines:
        if line.blank:
            continue
        number += 1
        if line.text is None:
            yield Row(number, None, line.problem)
            continue
        try:
            cells = _csv_cells(line.text)
        except TicketHubError as err:
            yield Row(number, None, err.message)
            continue
        if len(cells) != len(header):
            yield Row(number, None, f"expected {len(header)} fields, found {len(cells)}")
            continue
        yield Row(number, {k: (v if v != "" else None) for k, v in zip(header, cells, strict=True)})


def _request(data: dict[str, Any]) -> orders.OrderRequest:
    key = data.get("idempotency_key")
    if key is None or (isinstance(key, str) and not key.strip()):
        raise invalid("row has no idempotency_key; every batch row needs its own key")
    if not isinstance(key, str | int) or isinstance(key, bool):
        raise invalid("idempotency_key must be text")
    if data.get("items") is not None:
        if data.get("ticket_type_id") is not None or data.get("quantity") is not None:
            raise invalid("give either items or ticket_type_id and quantity, not both")
        items = data["items"]
        if not isinstance(items, list) or not items:
            raise invalid("items must be a non-empty list of {ticket_type_id, quantity}")
        pairs: list[tuple[object, object]] = []
        for item in items:
            if not isinstance(item, dict) or set(item) != {"ticket_type_id", "quantity"}:
                raise invalid("each item must be an object with ticket_type_id and quantity")
            pairs.append((_scalar(item["ticket_type_id"]), _scalar(item["quantity"])))
    else:
        if data.get("ticket_type_id") is None or data.get("quantity") is None:
            raise invalid("row needs ticket_type_id and quantity (or items)")
        pairs = [(_scalar(data["ticket_type_id"]), _scalar(data["quantity"]))]
    return orders.OrderRequest.parse(
        items=pairs,
        email=_text(data.get("email"), "email"),
        name=_text(data.get("name"), "name"),
        pay=_text(data.get("pay"), "pay"),
        card=_text(data.get("card"), "card"),
        idempotency_key=str(key),
    )


def _scalar(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid(f"expected a whole number, got {json.dumps(value)[:30]}")
    return value


def _text(value: object, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise invalid(f"{what} must be text")
    return str(value)


GROUP = 50  # rows of a regular file that share their commits (see orders.purchase_many)


def _prepare(row: Row) -> tuple[str | None, orders.OrderRequest | None, RowResult | None]:
    """(key, request, None) for a runnable row, (key, None, failure) for a refused one."""
    key = None
    if row.data is not None and isinstance(row.data.get("idempotency_key"), str | int):
        key = str(row.data["idempotency_key"])
    if row.problem is not None or row.data is None:
        err = TicketHubError(ErrorCode.INVALID_INPUT, row.problem or "unreadable row")
        return key, None, RowResult(row.number, key, False, error=err.to_dict(), failure=err)
    try:
        req = _request(row.data)
    except TicketHubError as err:
        return key, None, RowResult(row.number, key, False, error=err.to_dict(), failure=err)
    return req.idempotency_key, req, None  # the normalised key: "K1 " and "K1" are one


def _as_row_result(number: int, key: str | None, outcome: Any) -> RowResult:
    if isinstance(outcome, TicketHubError):
        return RowResult(number, key, False, error=outcome.to_dict(), failure=outcome)
    return RowResult(number, key, True, outcome.replayed, order=outcome.order)


def _run_group(
    s: Session, group: list[tuple[Row, str | None, orders.OrderRequest | None, RowResult | None]]
) -> list[RowResult]:
    requests = [req for _, _, req, _ in group if req is not None]
    if len(requests) == 1:
        try:
            outcomes: list[Any] = [orders.purchase(s, requests[0])]
        except TicketHubError as err:
            outcomes = [err]
    else:
        outcomes = orders.purchase_many(s, requests) if requests else []
    results, pending = [], iter(outcomes)
    for row, key, req, failure in group:
        results.append(failure if req is None else _as_row_result(row.number, key, next(pending)))
    return results


def run(
    s: Session,
    stream: BinaryIO,
    *,
    stop_on_error: bool = False,
    group_size: int = 1,
    show_error: Callable[[TicketHubError], dict[str, Any]] | None = None,
) -> Iterator[RowResult]:
    """Yield each row's result once it is final, in input order. With group_size > 1,
    consecutive rows share their commits (a row whose key repeats one in the group starts a
    new group); every result is still committed before it is yielded. `show_error` makes a
    failed row's error object the way the caller's transport shows errors."""
    for result in _results(s, stream, stop_on_error=stop_on_error, group_size=group_size):
        if show_error is not None and result.failure is not None:
            result.error = show_error(result.failure)
        yield result


def _results(
    s: Session, stream: BinaryIO, *, stop_on_error: bool, group_size: int
) -> Iterator[RowResult]:
    group: list[tuple[Row, str | None, orders.OrderRequest | None, RowResult | None]] = []
    keys: set[str] = set()
    for row in read_rows(stream):
        key, req, failure = _prepare(row)
        if key is not None and key in keys:
            yield from _flush(s, group, keys)
        group.append((row, key, req, failure))
        if key is not None:
            keys.add(key)
        if len(group) >= group_size:
            for result in _flush(s, group, keys):
                yield result
                if stop_on_error and not result.ok:
                    return
    for result in _flush(s, group, keys):
        yield result
        if stop_on_error and not result.ok:
            return


def _flush(
    s: Session,
    group: list[tuple[Row, str | None, orders.OrderRequest | None, RowResult | None]],
    keys: set[str],
) -> list[RowResult]:
    results = _run_group(s, group) if group else []
    group.clear()
    keys.clear()
    return results


def is_regular_file(stream: BinaryIO) -> bool:
    """True for a file on disk (also `- < file`): its rows are all there, so they can share
    commits without delaying anyone's answer."""
    import os
    import stat

    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


def open_input(path: str) -> BinaryIO:
    import sys

    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise TicketHubError(ErrorCode.NOT_FOUND, f"batch file {path} not found") from None
    except IsADirectoryError:
        raise invalid(f"{path} is a directory, not a batch file") from None
    except OSError as exc:
        raise invalid(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:  # a NUL byte in the name: no file can have it
        raise invalid("batch file name contains a NUL byte") from None

"""Batch sales: many purchases from CSV or JSON Lines, each row its own idempotent purchase.

Rows run in input order through the same service as `purchase`; a failing row does not stop
the rest (unless asked). Re-running a file is safe: finished rows replay, a row a killed run
left in flight resumes, nothing is sold twice.

Input is what shops export: a CSV delimited by `,` `;` or tab (guessed from the header unless
given), column names in any case with stray spaces or a byte order mark, and columns we do
not use (ignored, and named once in the summary). JSON Lines keys are matched the same way.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from . import bounded, orders
from .errors import ErrorCode, TicketHubError, invalid
from .session import Session

COLUMNS = ("idempotency_key", "ticket_type_id", "quantity", "email", "name", "pay", "card")
REQUIRED = ("idempotency_key", "ticket_type_id", "quantity", "pay")
JSON_FIELDS = (*COLUMNS, "items")
MAX_LINE = 100_000  # bytes per line; a real row is a few hundred
SHOWN_ROWS = 20  # rows kept for the default human table; the rest are only counted
SHOWN_FAILURES = SHOWN_ROWS
SNIFFED = (",", ";", "\t")  # the delimiters guessed from a CSV header, in order of preference
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
MAX_IGNORED = 50  # distinct ignored column names remembered (a hostile file may have millions)
# The failure codes the summary counts on their own; every other code is `other`.
CATEGORIES = {
    "PAYMENT_DECLINED": "declined",
    "PAYMENT_UNKNOWN": "unknown",
    "SOLD_OUT": "sold_out",
    "INVALID_INPUT": "invalid",
}


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
    error: dict[str, Any] | None = None
    buyer: str | None = None  # the row's name or email, for the human table only

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


@dataclass(slots=True)
class Shown:
    """What the human table shows of one row: a few fields, not the whole order, so that
    `--show all` over a large file keeps a small record per row."""

    row: int
    key: str | None
    ok: bool
    replayed: bool
    code: str | None
    message: str | None
    buyer: str | None
    order_id: int | None
    tickets: int | None
    total: str | None

    @classmethod
    def of(cls, r: RowResult) -> Shown:
        order, error = r.order or {}, r.error or {}
        total = f"{order['total']} {order['currency']}" if "total" in order else None
        return cls(
            r.row,
            r.idempotency_key,
            r.ok,
            r.replayed,
            None if r.ok else str(error.get("code", "INTERNAL")),
            error.get("message"),
            r.buyer or order.get("name") or order.get("email"),
            order.get("id", error.get("order_id")),
            len(order["tickets"]) if isinstance(order.get("tickets"), list) else None,
            total,
        )


@dataclass
class Summary:
    """The counts of a run, and the rows kept for people. `show` says which rows are kept:
    auto (the first SHOWN_ROWS failures, then sold rows up to SHOWN_ROWS in all), failed
    (every failed row), all (every row) or none. Failures are listed before sold rows."""

    rows: int = 0
    ok: int = 0
    failed: int = 0
    replayed: int = 0
    declined: int = 0
    unknown: int = 0
    sold_out: int = 0
    invalid: int = 0
    other: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    show: str = "auto"
    failures: list[Shown] = field(default_factory=list)
    successes: list[Shown] = field(default_factory=list)

    def add(self, result: RowResult) -> None:
        self.rows += 1
        if result.ok:
            self.ok += 1
            self.replayed += int(result.replayed)
            if self.show == "all" or (self.show == "auto" and len(self.successes) < SHOWN_ROWS):
                self.successes.append(Shown.of(result))
            return
        self.failed += 1
        code = str((result.error or {}).get("code", "INTERNAL"))
        self.errors[code] = self.errors.get(code, 0) + 1
        category = CATEGORIES.get(code, "other")
        setattr(self, category, getattr(self, category) + 1)
        if self.show in ("all", "failed") or (
            self.show == "auto" and len(self.failures) < SHOWN_ROWS
        ):  # memory stays bounded on any file unless every row was asked for
            self.failures.append(Shown.of(result))

    @property
    def listed(self) -> list[Shown]:
        """The rows for the human table: failures first, each kind in file order."""
        if self.show == "none":
            return []
        rows = self.failures if self.show == "failed" else self.failures + self.successes
        return rows[:SHOWN_ROWS] if self.show == "auto" else rows

    @property
    def not_listed(self) -> int:
        """Rows the default table had no room for (0 when `show` chose what to list)."""
        return self.rows - len(self.listed) if self.show == "auto" else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "ok": self.ok,
            "failed": self.failed,
            "replayed": self.replayed,
            "declined": self.declined,
            "unknown": self.unknown,
            "sold_out": self.sold_out,
            "invalid": self.invalid,
            "other": self.other,
            "errors": self.errors,
            "ignored_columns": self.ignored_columns,
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


def parse_delimiter(value: str | None) -> str | None:
    """The CSV delimiter `--delimiter` forces: one of `, ; |` or a tab (`tab`, `\\t` or the
    character itself); None to guess it from the header."""
    if value is None:
        return None
    aliases = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    chosen = value if value in DELIMITER_NAMES else aliases.get(value.strip().lower())
    if chosen is None:
        raise invalid(
            f"--delimiter must be one of , ; | or tab, got {value[:20]!r}",
            hint="for a tab-separated file: --delimiter tab",
        )
    return chosen


def column_name(cell: str) -> str:
    """A column name as matched: trimmed (a stray byte order mark too) and lower-cased, so
    `Idempotency_Key ` is `idempotency_key`."""
    return cell.strip().lstrip("\ufeff").strip().lower()


class Source:
    """The rows of one batch input and what reading it found out: the format, the CSV
    delimiter (given or guessed from the header) and the columns that are not ours. Extra
    columns are ignored, so a web-shop export with `order_ref` or `notes` runs as it is;
    `ignored` names them (first seen first, at most MAX_IGNORED) so they are reported once."""

    def __init__(self, stream: BinaryIO, *, delimiter: str | None = None) -> None:
        self.stream = stream
        self.forced = delimiter
        self.format: str | None = None  # "csv" or "jsonl" once opened
        self.delimiter: str | None = None
        self.ignored: list[str] = []
        self._rows: Iterator[Row] | None = None

    def open(self) -> Source:
        """Read up to the first non-blank line (the CSV header): INVALID_INPUT here, before
        any row runs, for a file that is unusable as a whole."""
        if self._rows is None:
            self._rows = self._start()
        return self

    def __iter__(self) -> Iterator[Row]:
        self.open()
        assert self._rows is not None
        return self._rows

    def _start(self) -> Iterator[Row]:
        """Detect the format from the first non-blank line. Every non-blank line after a CSV
        header (every non-blank line of JSON Lines) is one data row: a broken line fails as
        its own row and never swallows the rows after it."""
        lines = _text_lines(self.stream)
        first = next((line for line in lines if not line.blank), None)
        if first is None:
            raise invalid(
                "the batch file is empty", hint=f"CSV needs a header: {','.join(COLUMNS)}"
            )
        if first.text is None and not first.start.lstrip().startswith(b"{"):
            raise invalid(f"line {first.number}: {first.problem}: not a CSV or JSON Lines file")
        if first.text is None or first.text.lstrip().startswith("{"):
            self.format = "jsonl"
            return self._json_rows(_chain([first], lines))  # an unreadable first row fails alone
        self.format = "csv"
        header = self._csv_header(first.text)
        return self._csv_rows(header, lines)

    def _ignore(self, name: str) -> None:
        name = name.strip().lstrip("\ufeff").strip()[:100]  # as written, without padding
        if len(self.ignored) < MAX_IGNORED and name not in self.ignored:
            self.ignored.append(name)

    def _json_rows(self, lines: Iterator[Line]) -> Iterator[Row]:
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
            yield self._json_row(number, data)

    def _json_row(self, number: int, data: dict[str, Any]) -> Row:
        picked: dict[str, Any] = {}
        for key, value in data.items():
            name = column_name(key)
            if name not in JSON_FIELDS:
                self._ignore(key)
            elif name in picked:
                return Row(number, picked, f"field {name} is given twice")
            else:
                picked[name] = value
        return Row(number, picked)

    def _csv_header(self, text: str) -> list[str | None]:
        """The header's columns in order: our name, or None for a column we ignore."""
        delimiter = self.forced or _sniff(text)
        self.delimiter = delimiter
        try:
            cells = _csv_cells(text, delimiter)
        except TicketHubError as err:
            raise invalid(f"bad CSV header: {err.message}") from None
        names = [column_name(c) for c in cells]
        known = [n for n in names if n in COLUMNS]
        missing = [c for c in REQUIRED if c not in known]
        twice = sorted({n for n in known if known.count(n) > 1})
        if missing or twice:
            parts = [f"missing column(s) {', '.join(missing)}"] if missing else []
            if twice:
                parts.append(f"column(s) given twice: {', '.join(twice)}")
            how = "given by --delimiter" if self.forced else "guessed from the header"
            found = ", ".join(repr(c.strip()[:40]) for c in cells[:12])
            found += f" and {len(cells) - 12} more" if len(cells) > 12 else ""
            raise invalid(
                f"bad CSV header: {'; '.join(parts)}; delimiter {delimiter!r} ({how});"
                f" found column(s): {found}",
                hint=f"columns: {','.join(COLUMNS)} (email, name, card optional; others are"
                " ignored); another delimiter: --delimiter , ; | or tab",
            )
        for cell, name in zip(cells, names, strict=True):
            if name not in COLUMNS:
                self._ignore(cell)
        return [n if n in COLUMNS else None for n in names]

    def _csv_rows(self, header: list[str | None], lines: Iterator[Line]) -> Iterator[Row]:
        keep = [(i, n) for i, n in enumerate(header) if n is not None]
        width, delimiter = len(header), self.delimiter or ","
        number = 0
        for line in lines:
            if line.blank:
                continue
            number += 1
            if line.text is None:
                yield Row(number, None, line.problem)
                continue
            try:
                cells = _csv_cells(line.text, delimiter)
            except TicketHubError as err:
                yield Row(number, None, err.message)
                continue
            if len(cells) != width:
                yield Row(number, None, f"expected {width} fields, found {len(cells)}")
                continue
            yield Row(number, {n: (cells[i] if cells[i] != "" else None) for i, n in keep})


def read_rows(stream: BinaryIO, *, delimiter: str | None = None) -> Iterator[Row]:
    """The rows of `stream` (see `Source`), its header already checked."""
    return iter(Source(stream, delimiter=delimiter).open())


def _sniff(header: str) -> str:
    """The delimiter that splits the header into the most of our column names (then into
    the most cells); a comma when nothing fits, so the error shows what was found."""
    best, score = ",", (-1, -1)
    for delimiter in SNIFFED:
        try:
            cells = _csv_cells(header, delimiter)
        except TicketHubError:
            continue
        fit = (sum(column_name(c) in COLUMNS for c in cells), len(cells))
        if fit > score:
            best, score = delimiter, fit
    return best


def _chain(head: list[Line], tail: Iterable[Line]) -> Iterator[Line]:
    yield from head
    yield from tail


def _csv_cells(text: str, delimiter: str = ",") -> list[str]:
    """One CSV record from one line. No field may hold a line break (names, emails and keys
    refuse control characters), so a quote left open is this line's error, never a licence
    to read the following rows into one field."""
    try:
        records = list(csv.reader([text], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise invalid(f"malformed CSV line ({exc}); quotes must be balanced on one line") from None
    if len(records) != 1:
        raise invalid("malformed CSV line: a record must be one line")
    return records[0]


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
        return key, None, RowResult(row.number, key, False, error=err.to_dict(), buyer=_buyer(row))
    try:
        req = _request(row.data)
    except TicketHubError as err:
        return key, None, RowResult(row.number, key, False, error=err.to_dict(), buyer=_buyer(row))
    return req.idempotency_key, req, None  # the normalised key: "K1 " and "K1" are one


def _buyer(row: Row) -> str | None:
    """Who a refused row was for, as the file says it (name, else email), if it is text."""
    for column in ("name", "email"):
        value = (row.data or {}).get(column)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _as_row_result(number: int, req: orders.OrderRequest, outcome: Any) -> RowResult:
    key, buyer = req.idempotency_key, req.name or req.email
    if isinstance(outcome, TicketHubError):
        return RowResult(number, key, False, error=outcome.to_dict(), buyer=buyer)
    return RowResult(number, key, True, outcome.replayed, order=outcome.order, buyer=buyer)


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
    for row, _key, req, failure in group:
        results.append(failure if req is None else _as_row_result(row.number, req, next(pending)))
    return results


def run(
    s: Session,
    source: Source | BinaryIO,
    *,
    stop_on_error: bool = False,
    group_size: int = 1,
) -> Iterator[RowResult]:
    """Yield each row's result once it is final, in input order. With group_size > 1,
    consecutive rows share their commits (a row whose key repeats one in the group starts a
    new group); every result is still committed before it is yielded. `source` is a
    `Source` (to learn its delimiter and ignored columns) or a binary stream."""
    rows = source if isinstance(source, Source) else Source(source)
    group: list[tuple[Row, str | None, orders.OrderRequest | None, RowResult | None]] = []
    keys: set[str] = set()
    for row in rows:
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

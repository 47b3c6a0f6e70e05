"""`db copy`: move a whole box office from one database to another, e.g. from the SQLite
file it started on to the PostgreSQL server it outgrew it for.

Every table goes, with its ids (orders, tickets and audit rows keep their numbers, so a
printed ticket, an order id in an e-mail and the audit trail stay true). The source is read
in one consistent snapshot (a sale committed meanwhile is either wholly in the copy or not
at all; writers are not blocked). The target is filled in ONE transaction, inside the one
that gives it its schema (`db.init(then=…)`): either the whole box office arrives, or the
target is left as it was. A target that already holds anything is refused, so a copy can
never merge two box offices or overwrite one.

Supported: SQLite → PostgreSQL (the point of it), PostgreSQL → SQLite (a backup, or a move
back), SQLite → SQLite and PostgreSQL → PostgreSQL. Rows are read in batches and written with
COPY on PostgreSQL, batched executemany on SQLite.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from .. import audit, db
from ..errors import ErrorCode, TicketHubError, ref
from .url import display, is_postgres

# Parents before children (foreign keys are checked row by row on PostgreSQL).
TABLES = (
    "meta",
    "events",
    "ticket_types",
    "orders",
    "order_lines",
    "idempotency_keys",
    "tickets",
    "payments",
    "mockpay_charges",
    "callbacks",
    "scans",
    "audit_log",
    "api_tokens",
    "http_responses",
    "token_misses",
)
# Tables whose `id` is handed out by the database (an identity on PostgreSQL).
IDENTITY_TABLES = (
    "events",
    "ticket_types",
    "orders",
    "tickets",
    "payments",
    "callbacks",
    "scans",
    "audit_log",
    "api_tokens",
    "token_misses",
)
# `meta` rows that say what a database is (PostgreSQL keeps them there, SQLite in pragmas):
# the target's own init writes them, they are never copied
IDENTITY_KEYS = ("application", "schema_version")
BATCH = 5000

Progress = Callable[[str, int, int], None]  # (table, rows copied so far, rows in all)


@dataclass
class CopyResult:
    source: str  # as it may be shown (a URL without its password)
    target: str
    created: bool  # the target got its schema from this copy
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.target,
            "created": self.created,
            "rows": self.rows,
            "total_rows": self.total,
            "seconds": round(self.seconds, 3),
        }


def copy(
    source: str,
    target: str,
    *,
    operator: str,
    busy_budget_s: float | None = None,
    progress: Progress | None = None,
) -> CopyResult:
    """Copy the box office at `source` into the empty database `target` (created like
    `init` when it does not exist yet). One audit row on the target records the copy."""
    if _same(source, target):
        raise TicketHubError(
            ErrorCode.INVALID_INPUT,
            f"{ref('from')} and {ref('to')} name the same database ({display(source)})",
            field="to",
        )
    started = time.perf_counter()
    src = db.connect(source, busy_budget_s)
    result = CopyResult(display(source), display(target), created=False)
    existed = is_postgres(target) or os.path.exists(target)
    try:
        with db.snapshot(src):
            counts = {t: _count(src, t) for t in TABLES}

            def fill(dst: db.Connection) -> None:
                _refuse_unless_empty(dst)
                _copy_tables(src, dst, counts, result.rows, progress)
                if dst.dialect == "postgresql":
                    from . import postgres

                    postgres.continue_identities(dst, IDENTITY_TABLES)  # type: ignore[arg-type]
                audit.record(
                    dst,
                    operator,
                    "database",
                    None,
                    "copy",
                    data={"from": result.source, "rows": result.total},
                )

            conn, _, result.created = db.init(target, busy_budget_s, then=fill)
            conn.close()
    except BaseException:
        if not existed:
            _remove_file(target)
        raise
    finally:
        src.close()
    result.seconds = time.perf_counter() - started
    return result


def _same(source: str, target: str) -> bool:
    if is_postgres(source) or is_postgres(target):
        return source == target
    try:
        return os.path.exists(target) and os.path.samefile(source, target)
    except OSError:
        return False


def _count(conn: db.Connection, table: str) -> int:
    sql = f"SELECT count(*) FROM {table}"
    if table == "meta":
        sql += " WHERE key NOT IN ('application', 'schema_version')"
    return int(conn.execute(sql).fetchone()[0])


def _refuse_unless_empty(dst: db.Connection) -> None:
    """Inside the target's transaction: refuse a target that holds any row (nothing is
    changed: the transaction rolls back)."""
    full = [t for t in TABLES if _has_rows(dst, t)]
    if full:
        raise TicketHubError(
            ErrorCode.INVALID_STATE,
            f"database {dst.path} is not empty ({', '.join(full)} hold rows);"
            " db copy only fills an empty database, and nothing was changed",
            field="to",
            hint="name a new database (createdb NAME, or a new file)",
        )


def _has_rows(conn: db.Connection, table: str) -> bool:
    sql = f"SELECT 1 FROM {table}"
    if table == "meta":
        sql += " WHERE key NOT IN ('application', 'schema_version')"
    return conn.execute(sql + " LIMIT 1").fetchone() is not None


def _copy_tables(
    src: db.Connection,
    dst: db.Connection,
    counts: dict[str, int],
    copied: dict[str, int],
    progress: Progress | None,
) -> None:
    total = sum(counts.values())
    done = 0
    for table in TABLES:
        columns = _columns(src, table)
        select = f"SELECT {', '.join(columns)} FROM {table}"
        if table == "meta":
            select += " WHERE key NOT IN ('application', 'schema_version')"
        rows = _read(src, select)
        n = 0
        for batch in _batches(rows, BATCH):
            n += _write(dst, table, columns, batch)
            if progress is not None:
                progress(table, done + n, total)
        copied[table] = n
        done += n
        if progress is not None:
            progress(table, done, total)


def _columns(conn: db.Connection, table: str) -> list[str]:
    cur = conn.execute(f"SELECT * FROM {table} LIMIT 0")
    return [d[0] for d in cur.description]


def _read(conn: db.Connection, sql: str) -> Iterable[Sequence[Any]]:
    stream = getattr(conn, "stream", None)  # PostgreSQL: a server-side cursor
    if stream is not None:
        return stream(sql)  # type: ignore[no-any-return]
    return conn.execute(sql)  # type: ignore[no-any-return]  # SQLite: already lazy


def _batches(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield [tuple(r) for r in batch]


def _write(dst: db.Connection, table: str, columns: list[str], rows: list[Sequence[Any]]) -> int:
    copy_rows = getattr(dst, "copy_rows", None)  # PostgreSQL: COPY FROM STDIN
    if copy_rows is not None:
        return int(copy_rows(table, columns, rows))
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" * len(columns))
    dst.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows)
    return len(rows)


def _remove_file(path: str) -> None:
    """A file this copy created is removed again when the copy fails (it was empty)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            os.unlink(path + suffix)

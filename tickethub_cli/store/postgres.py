"""PostgreSQL behind the same small connection interface the services use on SQLite.

Imported only when a target is a `postgresql://` URL (psycopg never loads on the SQLite
path). The services write portable SQL with `?` placeholders; `PgConnection.execute` turns
each text into psycopg's form once (cached) and maps driver errors to TicketHubError by
SQLSTATE, with the URL's password blanked out of every message.

Writes: READ COMMITTED, and every write transaction first takes one transaction-scoped
advisory lock (`pg_advisory_xact_lock`), the same single write lock SQLite's
`BEGIN IMMEDIATE` gives. The services' read-then-write steps (a seat count, a key's lease,
a ticket's check-in) and the group-commit writer's shared facts rely on no other writer
committing in between; taking the lock keeps that promise on PostgreSQL without 14 ad-hoc
row locks that a later edit could miss. Reads (snapshots, reports, lists) take no lock and
run beside the writers (MVCC), and every machine's writers queue on one lock fairly.
`lock_timeout` is the busy budget: a writer that cannot get the lock in time gets DB_BUSY
with nothing changed, as on SQLite.

Durability: `synchronous_commit = on` on the box office's connections (a reported sale is
committed); the mock provider's ledger uses `off`, as it uses synchronous=NORMAL on SQLite.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.types.numeric import NumericLoader

from ..errors import ErrorCode, TicketHubError
from .url import display, redact_text

WRITE_LOCK = 0x54484231  # "THB1": the database's one write lock (an advisory lock key)
META_KEYS = ("application", "schema_version")
APPLICATION = "tickethub"


class Row:
    """A result row read by position or (case-insensitive) name, like sqlite3.Row."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key.lower()]]
            except KeyError:
                raise IndexError(f"no column named {key}") from None
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return tuple(self._values) == tuple(other._values) and self._index == other._index
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._values))

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=False))!r})"


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    desc = cursor.description
    if desc is None:
        return tuple
    index: dict[str, int] = {}
    for i, column in enumerate(desc):
        index.setdefault(column.name.lower(), i)  # the first of two equal names, as SQLite

    def make(values: Sequence[Any]) -> Row:
        return Row(values, index)

    return make


class _IntegralNumeric(NumericLoader):
    """sum() of BIGINT columns is NUMERIC on PostgreSQL: whole values come back as int, as
    SQLite's do (money is integer minor units everywhere)."""

    def load(self, data: Any) -> Any:
        value = super().load(data)
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return int(value)
        return value


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\bIS NOT \?|\bIS \?|\?")
_IS = {"IS NOT ?": "IS DISTINCT FROM %s", "IS ?": "IS NOT DISTINCT FROM %s", "?": "%s"}


@functools.lru_cache(maxsize=2048)
def pg_sql(sql: str) -> str:
    """An SQLite-flavoured statement in psycopg's form: `?` → `%s` outside string literals,
    a literal `%` doubled, and SQLite's null-safe `IS ?` / `IS NOT ?` spelled as
    PostgreSQL's `IS [NOT] DISTINCT FROM`."""
    sql = sql.replace("%", "%%")
    return _PLACEHOLDER.sub(lambda m: _IS.get(m.group(0), m.group(0)), sql)


# SQLSTATEs a writer may meet when another holds what it needs: nothing was changed, and
# the whole unit of work may be run again
_BUSY = {"55P03", "57014", "40001", "40P01"}


_BEGIN_WRITE = f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"


class PgConnection:
    """The subset of sqlite3.Connection the services use, over one psycopg connection in
    autocommit mode (transactions are explicit BEGIN … COMMIT, as on SQLite)."""

    dialect = "postgresql"

    def __init__(self, raw: psycopg.Connection[Any], target: str, busy_budget_s: float) -> None:
        self._raw = raw
        self._target = target
        self.path = display(target)
        self.busy_budget_s = busy_budget_s

    # ----------------------------------------------------------------- statements
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        try:
            if params:
                return self._raw.execute(pg_sql(sql), params)
            return self._raw.execute(sql if "?" not in sql else pg_sql(sql))
        except psycopg.Error as exc:
            raise self.error(exc) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            with self._raw.cursor() as cur:
                cur.executemany(pg_sql(sql), list(rows))
        except psycopg.Error as exc:
            raise self.error(exc) from None

    def stream(self, sql: str, size: int = 5000) -> Iterator[Sequence[Any]]:
        """The rows of one query, fetched `size` at a time through a server-side cursor
        (a million rows never sit in memory at once); needs an open transaction."""
        try:
            with self._raw.cursor(name="tickethub_stream") as cur:
                cur.itersize = size
                cur.execute(pg_sql(sql))
                yield from cur
        except psycopg.Error as exc:
            raise self.error(exc) from None

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Append rows to `table` with COPY … FROM STDIN (many times faster than INSERTs);
        returns how many. `table` and `columns` are schema names, never user input."""
        names = ", ".join(f'"{c}"' for c in columns)
        done = 0
        try:
            with self._raw.cursor() as cur, cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as cp:
                for row in rows:
                    cp.write_row(row)
                    done += 1
        except psycopg.Error as exc:
            raise self.error(exc) from None
        return done

    def script(self, sql: str) -> None:
        """Run a multi-statement script (no parameters) inside the open transaction."""
        try:
            self._raw.execute(sql)  # type: ignore[call-overload]
        except psycopg.Error as exc:
            raise self.error(exc) from None

    @property
    def broken(self) -> bool:
        """The server hung up (a restart, a failover, an idle timeout, a terminated
        backend): this connection is gone for good; open a new one."""
        return self._raw.broken

    @property
    def in_transaction(self) -> bool:
        return self._raw.info.transaction_status != TransactionStatus.IDLE

    # ----------------------------------------------------------------- transactions
    def begin_write(self) -> None:
        """BEGIN, then the database's one write lock (waits up to lock_timeout). A lock not
        had in time ends the transaction it opened: the connection is left as SQLite's failed
        BEGIN IMMEDIATE leaves it (no transaction), so the session's next unit can start."""
        self.execute("BEGIN")
        try:
            self.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        except BaseException:
            self.rollback()
            raise

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            try:
                self._raw.execute("ROLLBACK")
            except psycopg.Error:
                # a broken connection: psycopg has already closed it; nothing was committed
                return

    def begin_read(self) -> None:
        """A consistent view across several statements (takes no lock)."""
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")

    def close(self) -> None:
        self._raw.close()

    # ----------------------------------------------------------------- errors
    def error(self, exc: BaseException) -> TicketHubError:
        return error(exc, self._target, self.busy_budget_s)


def error(exc: BaseException, target: str, budget_s: float | None = None) -> TicketHubError:
    """One TicketHubError for a driver error, by SQLSTATE, without the URL's secrets."""
    where = display(target)
    text = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else "", target)
    state = getattr(exc, "sqlstate", None) or _connect_state(text)
    if state == "55P03" and budget_s is not None:  # lock_timeout: the busy budget ran out
        return TicketHubError(
            ErrorCode.DB_BUSY,
            f"database {where} stayed locked for {budget_s:g} s; nothing was changed",
            hint="another writer holds the lock; retry, or raise TICKETHUB_BUSY_TIMEOUT",
        )
    if state == "53300":  # too many clients: the server has no connection to give
        return TicketHubError(
            ErrorCode.DB_BUSY,
            f"database server of {where} has no free connection ({text}); nothing was changed",
            hint="retry; or run fewer processes, or raise the server's max_connections",
        )
    if state in _BUSY:
        return TicketHubError(
            ErrorCode.DB_BUSY,
            f"database {where} is busy ({text}); nothing was changed",
            hint="another writer holds the lock; retry, or raise TICKETHUB_BUSY_TIMEOUT",
        )
    if state.startswith("08") or (isinstance(exc, psycopg.OperationalError) and not state):
        return TicketHubError(
            ErrorCode.DB_ERROR,
            f"cannot reach database {where} ({text})",
            hint="check the server is running and the URL, user and password",
        )
    if state == "3D000":
        return TicketHubError(
            ErrorCode.NOT_FOUND,
            f"database {where} not found ({text})",
            hint="create the database on the server (createdb NAME), then run init",
        )
    if state.startswith("28"):
        return TicketHubError(
            ErrorCode.DB_ERROR,
            f"database {where} refused the login ({text})",
            hint="check the user and password (PGPASSWORD, ~/.pgpass or a service file)",
        )
    if state in ("53100", "53200"):
        return TicketHubError(
            ErrorCode.DB_ERROR,
            f"database server of {where} is out of space or memory ({text});"
            " the step that failed was rolled back",
            hint="free space, then run `tickethub reconcile` and `tickethub doctor`",
        )
    return TicketHubError(ErrorCode.DB_ERROR, f"database {where}: {text}")


# A failed connection carries no SQLSTATE in psycopg: the server's FATAL line says which.
_CONNECT_STATES = (
    (re.compile(r'FATAL:\s+database ".*" does not exist'), "3D000"),
    (re.compile(r"FATAL:\s+password authentication failed|no password supplied"), "28P01"),
    (re.compile(r'FATAL:\s+role ".*" does not exist'), "28000"),
    (re.compile(r"FATAL:\s+(permission denied for database|no pg_hba.conf entry)"), "28000"),
)


def _connect_state(text: str) -> str:
    for pattern, state in _CONNECT_STATES:
        if pattern.search(text):
            return state
    return ""


def connect(target: str, busy_budget_s: float, *, external: bool = False) -> PgConnection:
    """Open a connection to `target` (a URL; libpq also reads PGPASSWORD, ~/.pgpass and
    service files). `external`: the mock provider's ledger (synchronous_commit off)."""
    try:
        # a host that drops packets must not hold a writer for the OS's TCP timeout: libpq
        # waits forever unless told; the URL's own connect_timeout wins
        extra = {} if "connect_timeout" in conninfo_to_dict(target) else {"connect_timeout": 10}
        raw = psycopg.connect(target, autocommit=True, row_factory=_row_factory, **extra)
    except psycopg.Error as exc:
        raise error(exc, target) from None
    raw.adapters.register_loader("numeric", _IntegralNumeric)
    conn = PgConnection(raw, target, busy_budget_s)
    ms = max(1, int(busy_budget_s * 1000))
    conn.execute(f"SET lock_timeout = {ms}")
    conn.execute(f"SET synchronous_commit = {'off' if external else 'on'}")
    conn.execute("SET TIME ZONE 'UTC'")
    return conn


def identity(conn: PgConnection) -> tuple[str | None, int]:
    """(application, schema version) from `meta`; (None, 0) on an empty database."""
    exists = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]
    if not exists:
        return None, 0
    rows = dict(
        conn.execute(
            "SELECT key, value FROM meta WHERE key IN ('application', 'schema_version')"
        ).fetchall()
    )
    return rows.get("application"), int(rows.get("schema_version") or 0)


def has_tables(conn: PgConnection) -> bool:
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchone()[0]
    )


def set_identity(conn: PgConnection, version: int) -> None:
    for key, value in (("application", APPLICATION), ("schema_version", str(version))):
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def continue_identities(conn: PgConnection, tables: Iterable[str]) -> None:
    """Each table's identity (its `id` sequence) continues after the largest id it holds:
    rows copied in with their ids must not be handed out again."""
    for table in tables:
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
            f" coalesce(max(id), 0) + 1, false) FROM {table}"
        )

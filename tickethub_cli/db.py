"""Connections, migrations and the one transaction helper (the unit of work), per backend.

A database target is a file path (SQLite, the default) or a `postgresql://` URL
(`store/postgres.py`, loaded only then). The domain modules speak portable SQL with `?`
placeholders through `transaction()` / `snapshot()` / `savepoint()` and never touch
pragmas, locking or driver error texts; both connection kinds offer the same few methods
(`execute`, `executemany`, `in_transaction`, `begin_write`, `commit`, `begin_read`, …).
Everything SQLite-specific lives here.
"""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ErrorCode, TicketHubError
from .store.url import display, is_postgres

if TYPE_CHECKING:
    from .store.postgres import PgConnection

SCHEMA_VERSION = 4
APPLICATION_ID = 0x54484231  # "THB1": marks a file as a TicketHub database
DEFAULT_BUSY_BUDGET_S = 10.0


class Row(Protocol):
    """A result row: by position or by column name (sqlite3.Row, store.postgres.Row)."""

    def __getitem__(self, key: Any) -> Any: ...
    def keys(self) -> list[str]: ...


class Connection(Protocol):
    """What the services may use of a connection, on either backend."""

    path: str
    busy_budget_s: float
    dialect: str
    broken: bool  # lost for good (a PostgreSQL server hung up): open a new connection

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...
    def executemany(self, sql: str, rows: Any, /) -> Any: ...
    @property
    def in_transaction(self) -> bool: ...
    def close(self) -> None: ...


class SqliteConnection(sqlite3.Connection):
    """An SQLite connection that knows its file (for error messages) and how long its
    writes wait for the lock: per connection, not per process, so sessions with different
    settings can share a process."""

    path: str = "database"
    busy_budget_s: float = DEFAULT_BUSY_BUDGET_S
    dialect = "sqlite"
    broken = False  # a file never hangs up

    def begin_write(self) -> None:
        _begin_immediate(self, self.busy_budget_s)

    def commit(self) -> None:  # replaces sqlite3's commit(): ours waits out a busy lock
        _commit(self, self.busy_budget_s)

    def rollback(self) -> None:
        if self.in_transaction:
            self.execute("ROLLBACK")

    def begin_read(self) -> None:
        self.execute("BEGIN")

    def script(self, sql: str) -> None:
        _executescript_in_tx(self, sql)


def busy_budget(conn: sqlite3.Connection | None = None) -> float:
    """How long a write on `conn` waits for the lock (the default for a plain connection)."""
    return getattr(conn, "busy_budget_s", DEFAULT_BUSY_BUDGET_S)


def schema_sql(dialect: str = "sqlite") -> str:
    """The whole current schema (a new database gets it at once): the packaged copy when
    installed, the repository's top-level file otherwise."""
    from importlib import resources  # only init needs the schema text

    name = "schema.sql" if dialect == "sqlite" else f"schema.{dialect}.sql"
    try:
        return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return (Path(__file__).resolve().parent.parent / name).read_text(encoding="utf-8")


def migration_sql(target: int) -> str:
    """The script that brings a database from version target-1 to target (in migrations/)."""
    from importlib import resources

    return resources.files(__package__).joinpath(f"migrations/v{target}.sql").read_text("utf-8")


def _upgrade(conn: sqlite3.Connection, version: int) -> int:
    """Inside init's transaction: a new database gets the whole schema at once; an older one
    runs each migration after its version in turn."""
    if version == 0:
        _executescript_in_tx(conn, schema_sql())
    else:
        for target in range(version + 1, SCHEMA_VERSION + 1):
            _executescript_in_tx(conn, migration_sql(target))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return SCHEMA_VERSION


def _db_error(exc: sqlite3.Error, path: str | None = None) -> TicketHubError:
    """One clear line for each way the file or the disk can fail us."""
    path = path or "database"
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return TicketHubError(ErrorCode.DB_BUSY, f"database {path} is busy: {text}")
    if "readonly" in low or "read-only" in low:
        return TicketHubError(
            ErrorCode.DB_ERROR,
            f"database {path} is read-only; nothing was changed",
            hint="check the permissions of the file, its -wal/-shm files and its folder",
        )
    if "full" in low:
        return TicketHubError(
            ErrorCode.DB_ERROR,
            f"disk full while writing {path}; the step that failed was rolled back",
            hint="free space, then run `tickethub reconcile` and `tickethub doctor`",
        )
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return TicketHubError(
            ErrorCode.DB_ERROR,
            f"{path} is damaged or not a TicketHub database ({text})",
            hint="restore it from a backup; `sqlite3 FILE .recover` may rescue data",
        )
    if "unable to open" in low:
        return TicketHubError(
            ErrorCode.DB_ERROR,
            f"cannot open database {path} ({text})",
            hint="check that the file and its folder are readable and writable",
        )
    if "i/o error" in low:
        return TicketHubError(
            ErrorCode.DB_ERROR,
            f"I/O error writing {path} (disk full, file too large, or failing disk);"
            " the step that failed was rolled back",
            hint="fix the disk, then run `tickethub reconcile` and `tickethub doctor`",
        )
    return TicketHubError(ErrorCode.DB_ERROR, f"database {path}: {text}")


def _configure(conn: sqlite3.Connection) -> None:
    # While opening, wait in SQLite's busy handler: a reader meets a lock mainly when the last
    # other connection is closing and checkpoints the WAL. Once we are connected that cannot
    # happen, and the write lock is taken by our own jittered loop (see _begin_immediate).
    conn.execute(f"PRAGMA busy_timeout = {int(busy_budget(conn) * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")


def _raw_connect(path: str, mode: str, busy_budget_s: float | None) -> SqliteConnection:
    # percent-encode the name's bytes: a URI would misread %, ? and #, and a name that is
    # not UTF-8 (surrogates from argv) could not be passed as text at all
    from urllib.parse import quote_from_bytes  # already loaded by pathlib

    name = quote_from_bytes(os.fsencode(Path(path).absolute()), safe="/")
    uri = f"file:{name}?mode={mode}"
    # check_same_thread=False: a server may open a session in one thread and run its request
    # in another (one at a time; SQLite's serialized mode makes that safe)
    conn = sqlite3.connect(
        uri, uri=True, isolation_level=None, factory=SqliteConnection, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.path = path
    if busy_budget_s is not None:
        conn.busy_budget_s = busy_budget_s
    return conn


def connect(path: str, busy_budget_s: float | None = None) -> Connection:
    """Open an existing TicketHub database; never creates a file. Its writes wait
    `busy_budget_s` for the lock (DEFAULT_BUSY_BUDGET_S when None)."""
    if is_postgres(path):
        return _pg_connect(path, busy_budget_s)
    if not os.path.exists(path):
        raise TicketHubError(
            ErrorCode.NOT_FOUND,
            f"database {path} not found",
            field="db",
            hint="create it first (init)",
        )
    _require_regular_file(path)
    try:
        conn = _raw_connect(path, "rw", busy_budget_s)
        _configure(conn)
        app_id, version = _identity(conn)
        conn.execute("PRAGMA busy_timeout = 0")
    except sqlite3.Error as exc:
        raise _db_error(exc, path) from None
    _check_identity(path, app_id, version)
    return conn


def _require_regular_file(path: str) -> None:
    """A database is a regular file. SQLite would block on a FIFO or read /dev/null as an
    empty file and then fail its first write with a misleading "disk full"; say what it is.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise TicketHubError(ErrorCode.NOT_FOUND, f"database {path} not found") from None
    except (OSError, ValueError) as exc:
        raise TicketHubError(ErrorCode.DB_ERROR, f"cannot open database {path}: {exc}") from None
    if stat.S_ISDIR(mode):
        raise TicketHubError(ErrorCode.DB_ERROR, f"{path} is a directory, not a database")
    if not stat.S_ISREG(mode):
        raise TicketHubError(
            ErrorCode.DB_ERROR,
            f"{path} is not a regular file (a device, pipe or socket), so not a database",
            field="db",
            hint="name a database file, or create one (init)",
        )


def connect_external(path: str, busy_budget_s: float | None = None) -> Connection:
    """A connection of its own for records that stand in for an external system (the mock
    provider's ledger): it commits without its own fsync (synchronous=NORMAL; on PostgreSQL
    synchronous_commit=off). Such records survive a crash of this process, and our next
    durable commit's fsync puts them on disk too; a real provider keeps its own books the
    same way, apart from ours."""
    if is_postgres(path):
        return _pg_connect(path, busy_budget_s, external=True)
    conn = connect(path, busy_budget_s)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _pg_connect(
    target: str, busy_budget_s: float | None, *, external: bool = False
) -> PgConnection:
    from .store import postgres

    conn = postgres.connect(target, _budget(busy_budget_s), external=external)
    try:
        app, version = postgres.identity(conn)
        if app is None and version == 0 and postgres.has_tables(conn):
            raise TicketHubError(
                ErrorCode.DB_ERROR,
                f"{conn.path} has tables but is not a TicketHub database",
                hint="name the database TicketHub was set up in",
            )
        if app is None and version == 0:
            raise TicketHubError(
                ErrorCode.NOT_FOUND,
                f"database {conn.path} has no TicketHub box office yet",
                field="db",
                hint="create it first (init)",
            )
        _check_identity(conn.path, APPLICATION_ID if app == postgres.APPLICATION else 0, version)
    except BaseException:
        conn.close()
        raise
    return conn


def _budget(busy_budget_s: float | None) -> float:
    return DEFAULT_BUSY_BUDGET_S if busy_budget_s is None else busy_budget_s


def schema_version(conn: Connection) -> int:
    """The schema version the database is at (PRAGMA user_version; `meta` on PostgreSQL)."""
    if conn.dialect == "sqlite":
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def _identity(conn: sqlite3.Connection) -> tuple[int, int]:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    return app_id, version


def _check_identity(path: str, app_id: int, version: int) -> None:
    if app_id != APPLICATION_ID:
        raise TicketHubError(ErrorCode.DB_ERROR, f"{path} is not a TicketHub database")
    if version > SCHEMA_VERSION:
        raise TicketHubError(
            ErrorCode.DB_ERROR,
            f"{path} has schema version {version}, newer than this TicketHub ({SCHEMA_VERSION})",
            hint="upgrade tickethub to open it",
        )
    if version < SCHEMA_VERSION:
        raise TicketHubError(
            ErrorCode.DB_ERROR,
            f"{path} has schema version {version}; this TicketHub needs {SCHEMA_VERSION}",
            hint="run `tickethub init` to migrate it",
        )


def init(
    path: str,
    busy_budget_s: float | None = None,
    then: Callable[[Connection], None] | None = None,
) -> tuple[Connection, int, bool]:
    """Create or migrate a database; idempotent. Returns (conn, schema_version, created).
    `then(conn)` runs inside the same transaction once the schema is in place (db copy
    fills the new database there: one commit, or nothing at all)."""
    if is_postgres(path):
        return _pg_init(path, busy_budget_s, then)
    created = False
    if not os.path.exists(path):
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise TicketHubError(ErrorCode.NOT_FOUND, f"directory {parent} does not exist")
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
            created = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise TicketHubError(ErrorCode.DB_ERROR, f"cannot create {path}: {exc}") from None
    _require_regular_file(path)
    try:
        conn = _raw_connect(path, "rw", busy_budget_s)
        _configure(conn)
        app_id, version = _identity(conn)
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and _has_tables(conn)):
            raise TicketHubError(
                ErrorCode.DB_ERROR, f"{path} is not a TicketHub database; refusing to touch it"
            )
        if version > SCHEMA_VERSION:
            _check_identity(path, APPLICATION_ID, version)
        conn.execute("PRAGMA journal_mode = WAL")  # only once the file is known to be ours
        with transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                version = _upgrade(conn, version)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            if then is not None:
                then(conn)
        conn.execute("PRAGMA busy_timeout = 0")
    except sqlite3.Error as exc:
        raise _db_error(exc, path) from None
    return conn, version, created


def _pg_init(
    target: str, busy_budget_s: float | None, then: Callable[[Connection], None] | None
) -> tuple[Connection, int, bool]:
    """PostgreSQL: the database must exist on the server (an operator creates it); init
    puts the schema into its current schema, under the write lock, once."""
    from .store import postgres

    conn = postgres.connect(target, _budget(busy_budget_s))
    try:
        with transaction(conn):
            app, version = postgres.identity(conn)
            created = app is None and version == 0
            if created and postgres.has_tables(conn):
                raise TicketHubError(
                    ErrorCode.DB_ERROR,
                    f"{conn.path} has tables but is not a TicketHub database; refusing to touch it",
                    hint="name an empty database (createdb), or another schema",
                )
            if not created and app != postgres.APPLICATION:
                raise TicketHubError(ErrorCode.DB_ERROR, f"{conn.path} is not a TicketHub database")
            if version > SCHEMA_VERSION:
                _check_identity(conn.path, APPLICATION_ID, version)
            if created:
                conn.script(schema_sql("postgresql"))
                version = SCHEMA_VERSION
            # (no PostgreSQL migrations yet: the first PostgreSQL schema is version 4)
            postgres.set_identity(conn, version)
            if then is not None:
                then(conn)
    except BaseException:
        conn.close()
        raise
    return conn, version, created


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0


def _executescript_in_tx(conn: sqlite3.Connection, sql: str) -> None:
    """Run a multi-statement script inside the open transaction (executescript would commit)."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                conn.execute(buffer)
            buffer = ""
    if buffer.strip() and not buffer.strip().startswith("--"):
        conn.execute(buffer)


def _begin_immediate(conn: sqlite3.Connection, budget: float) -> None:
    """Take the write lock with ~1 ms jittered retries: fair under many writers, unlike
    SQLite's own busy handler, which lets some writers starve for seconds."""
    deadline = time.monotonic() + budget
    delay = 0.0005
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise TicketHubError(
                    ErrorCode.DB_BUSY,
                    f"database stayed locked for {budget:g} s; nothing was changed",
                    hint="another process holds the write lock; retry, or raise "
                    "TICKETHUB_BUSY_TIMEOUT",
                ) from None
            time.sleep(random.uniform(0.5, 1.5) * delay)
            delay = min(delay * 1.5, 0.004)


def _commit(conn: sqlite3.Connection, budget: float) -> None:
    deadline = time.monotonic() + budget
    while True:
        try:
            conn.execute("COMMIT")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or (
                time.monotonic() >= deadline
            ):
                raise
            time.sleep(random.uniform(0.0005, 0.0015))


@contextmanager
def transaction(conn: Any) -> Iterator[Any]:
    """One unit of work, holding the database's write lock (SQLite: BEGIN IMMEDIATE;
    PostgreSQL: BEGIN and the advisory write lock) … COMMIT, rolled back on any exception."""
    if conn.in_transaction:
        raise RuntimeError("transaction() does not nest")
    conn.begin_write()
    try:
        yield conn
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


@contextmanager
def savepoint(conn: Any, name: str = "step") -> Iterator[Any]:
    """A nested unit inside an open transaction: on an exception only its own work is undone
    and the exception goes on; the transaction stays open."""
    if not conn.in_transaction:
        raise RuntimeError("savepoint() needs an open transaction")
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield conn
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


@contextmanager
def snapshot(conn: Any) -> Iterator[Any]:
    """A consistent read of several statements (WAL readers, and PostgreSQL's, never block
    writers)."""
    if conn.in_transaction:
        yield conn
        return
    conn.begin_read()
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


DatabaseError = sqlite3.Error  # what a driver may raise past the services (PostgreSQL errors are
# mapped to TicketHubError where they happen)


def translate(exc: BaseException, where: Any = None) -> TicketHubError:
    """Map a database error that escaped the domain code to a typed error, naming the
    database (`where`: its path or URL, or the connection it came from)."""
    if isinstance(exc, TicketHubError):
        return exc
    path = where if isinstance(where, str) or where is None else getattr(where, "path", None)
    return _db_error(exc, display(path) if path else None)  # type: ignore[arg-type]


_LATER = "write_later"  # key of a group's deferred rows (see write_later)


def write_later(group: dict[Any, Any] | None, conn: Connection, sql: str, row: Any) -> None:
    """An append-only INSERT that nothing in the same transaction reads back (a scan-log
    or audit row): inside a group commit (`group`, see store.writer.run_units) it is kept
    and written with the group's other rows of that statement in one `executemany` before
    the commit (one prepared statement per group instead of one execute per row); outside
    a group, at once."""
    if group is None:
        conn.execute(sql, row)
    else:
        group.setdefault(_LATER, {}).setdefault(sql, []).append(row)


def drop_later(group: dict[Any, Any] | None) -> None:
    """Forget the rows `write_later` kept (their unit failed and was rolled back)."""
    if group is not None:
        group.pop(_LATER, None)


def flush_later(group: dict[Any, Any] | None, conn: Connection) -> None:
    """Write the rows `write_later` kept, in the order they were kept (per statement)."""
    pending = group.pop(_LATER, None) if group is not None else None
    if not pending:
        return
    for sql, rows in pending.items():
        head, values, one = sql.partition(" VALUES ")
        if not values:  # not a plain INSERT … VALUES (…): row by row
            conn.executemany(sql, rows)
            continue
        if (
            _JSON_ROWS
            and conn.dialect == "sqlite"
            and len(rows) > 1
            and set(map(type, chain.from_iterable(rows))) <= _PLAIN
        ):
            # all rows in ONE statement, as one JSON parameter: text, integers and NULL
            # come back out of json_each as exactly what they were
            import json

            columns = ", ".join(f"value ->> {i}" for i in range(one.count("?")))
            conn.execute(
                f"{head} SELECT {columns} FROM json_each(?) ORDER BY key",
                (json.dumps(rows, ensure_ascii=False),),
            )
            continue
        start = 0
        for size in _CHUNKS:  # greedy: e.g. 37 rows = 32 + 4 + 1 (one statement each)
            while len(rows) - start >= size:
                part = rows[start : start + size]
                start += size
                conn.execute(
                    f"{head}{values}{', '.join([one] * size)}",
                    [value for row in part for value in row],
                )


# Rows kept by write_later leave as multi-row INSERTs of these sizes: one statement (one
# step, one release of the GIL) for many rows, and few distinct texts for the statement
# cache; executemany would step, and hand the GIL to the event loop, once per row.
_CHUNKS = (64, 16, 4, 1)
# rows of only these types go as one JSON array (`->>` is SQLite 3.38's)
_PLAIN = {str, int, type(None)}
_JSON_ROWS = sqlite3.sqlite_version_info >= (3, 38)

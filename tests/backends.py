"""The two database backends the suite runs on, as fixture factories (cosmicpython's
conftest idea): a test that takes `make_db` runs once on SQLite and once on PostgreSQL.

PostgreSQL comes from TICKETHUB_TEST_PG_URL when set (a server you run; the tests create
and drop their own databases on it), else from the PyPI package `pgserver`: a real
PostgreSQL 16 started in a temporary folder for the test session (about half a second).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

BACKENDS = ("sqlite", "postgresql")
_counter = itertools.count(1)


class PgServer:
    """A PostgreSQL server for tests: a URL of its maintenance database, and fresh
    databases on demand."""

    def __init__(self, url: str, cleanup: Iterator[None] | None = None) -> None:
        self.url = url
        self._cleanup = cleanup
        self._created: list[str] = []

    def url_of(self, name: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))

    def new_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"th_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self.url_of(name)

    def stop(self) -> None:
        if self._cleanup is not None:
            next(self._cleanup, None)


_shared: PgServer | None = None


def shared_pg() -> PgServer:
    """The one server of this test process (started on first use, stopped at exit): for the
    `pg_server` fixture and for code that cannot take fixtures (hypothesis state machines)."""
    global _shared
    if _shared is None:
        import atexit

        _shared = start_pg()
        atexit.register(_shared.stop)
    return _shared


def new_target(backend: str, folder: str, name: str = "box") -> str:
    """A new empty database on `backend`: a file in `folder`, or a fresh PostgreSQL one."""
    if backend == "sqlite":
        return os.path.join(folder, f"{name}.db")
    return shared_pg().new_database()


def start_pg() -> PgServer:
    """The server for this test session (see the module docstring)."""
    url = os.environ.get("TICKETHUB_TEST_PG_URL", "").strip()
    if url:
        return PgServer(url)
    import pgserver

    folder = tempfile.mkdtemp(prefix="th-pg-")
    server = pgserver.get_server(folder, cleanup_mode="stop")
    # tests never survive an OS crash anyway; a killed process or server keeps its commits
    import psycopg

    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("SELECT pg_reload_conf()")

    def cleanup() -> Iterator[None]:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
        yield

    return PgServer(server.get_uri(), cleanup())

"""A Session is what every service function works on: a connection, who is acting, and the
settings it runs with.

Scripts use it directly: ``s = tickethub_cli.open_session("box.db", operator="alice")``.
A long-lived server builds its `Settings` once and opens one session per unit of work (or
keeps one per worker thread): ``open_session(settings, operator=token_name)``, then
``s.close()`` (or ``with open_session(...) as s:``). A session is used by one thread at a
time; nothing in it is cached across sessions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import db
from .db import Connection
from .settings import Settings

if TYPE_CHECKING:
    from .payments import PaymentProvider


def default_operator() -> str:
    """TICKETHUB_OPERATOR, else the OS user (LOGNAME, USER, … as getpass reads them)."""
    from . import settings

    return settings.default_operator()


def default_db_path() -> str:
    from . import settings

    return settings.db_path_from_env()


class Session:
    """A connection, who is acting and the settings (a plain class: it is built on every
    command, and per request by a server)."""

    __slots__ = ("_provider", "conn", "group", "operator", "path", "settings")

    def __init__(
        self,
        conn: Connection,
        path: str,
        operator: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.conn = conn
        self.path = path
        self.settings = settings if settings is not None else Settings.from_env(db=path)
        self.operator = operator or self.settings.default_operator()
        self._provider: PaymentProvider | None = None
        # inside a group commit (store.writer.run_units): what its units share, else None
        self.group: dict[Any, Any] | None = None

    @property
    def provider(self) -> PaymentProvider:
        if self._provider is None:
            from .payments import MockProvider

            self._provider = MockProvider(
                db.connect_external(self.path, self.settings.busy_timeout_s)
            )
        return self._provider

    def end_read(self) -> None:
        """End a read left open (a long-lived session must not hold an old snapshot)."""
        if self.conn.in_transaction and not self.conn.broken:
            self.conn.execute("COMMIT")

    @property
    def broken(self) -> bool:
        """A connection of this session was lost for good (a PostgreSQL server restarted,
        failed over or timed it out; never on SQLite): a long-lived holder opens a new
        session instead of failing every later request."""
        provider = getattr(self._provider, "conn", None)
        return self.conn.broken or bool(getattr(provider, "broken", False))

    def schema_version(self) -> int:
        return db.schema_version(self.conn)

    def close(self) -> None:
        """Close the connection and the provider's; safe to call twice."""
        if self._provider is not None:
            self._provider.close()
            self._provider = None
        self.conn.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _settings(target: Settings | str | None) -> Settings:
    """Settings as given, or built from the environment with `target` as the database."""
    if isinstance(target, Settings):
        return target
    return Settings.from_env(db=target)


def open_session(target: Settings | str | None = None, operator: str | None = None) -> Session:
    """Open an existing database (NOT_FOUND if missing; never creates one). `target` is the
    settings to run with, or a database path (settings then come from the environment)."""
    settings = _settings(target)
    conn = db.connect(settings.db_path, settings.busy_timeout_s)
    return Session(conn, settings.db_path, operator or settings.default_operator(), settings)


def init_session(
    target: Settings | str | None = None, operator: str | None = None
) -> tuple[Session, int, bool]:
    """Create or migrate the database, then open a session on it (see open_session)."""
    settings = _settings(target)
    conn, version, created = db.init(settings.db_path, settings.busy_timeout_s)
    session = Session(conn, settings.db_path, operator or settings.default_operator(), settings)
    return session, version, created

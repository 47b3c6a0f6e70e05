"""A Session is what every service function works on: a connection and who is acting.

Scripts use it directly: ``s = tickethub_cli.open_session("box.db", operator="alice")``.
"""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING

from . import db
from .errors import invalid

if TYPE_CHECKING:
    from .payments import PaymentProvider


def default_operator() -> str:
    """TICKETHUB_OPERATOR, else the OS user (LOGNAME, USER, … as getpass reads them). A name
    that is not UTF-8 could not be stored in the audit log: refused, not mangled."""
    env = os.environ.get("TICKETHUB_OPERATOR", "").strip()
    if env:
        return _utf8_operator(env, "TICKETHUB_OPERATOR")
    import getpass

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name on this machine is not an error
        return f"uid{os.getuid()}"
    return _utf8_operator(user, "the OS user name (LOGNAME/USER)")


def _utf8_operator(name: str, source: str) -> str:
    from .settings import is_utf8

    if not is_utf8(name):
        raise invalid(
            f"{source} is not UTF-8 text", hint="set --operator NAME or TICKETHUB_OPERATOR"
        )
    return name


def default_db_path() -> str:
    return os.environ.get("TICKETHUB_DB", "").strip() or "tickethub.db"


class Session:
    """A connection and who is acting (a plain class: it is built on every command)."""

    __slots__ = ("_provider", "conn", "operator", "path")

    def __init__(self, conn: sqlite3.Connection, path: str, operator: str | None = None) -> None:
        self.conn = conn
        self.path = path
        self.operator = operator or default_operator()
        self._provider: PaymentProvider | None = None

    @property
    def provider(self) -> PaymentProvider:
        if self._provider is None:
            from .payments import MockProvider

            self._provider = MockProvider(db.connect_external(self.path))
        return self._provider

    def close(self) -> None:
        if self._provider is not None:
            self._provider.close()
        self.conn.close()


def open_session(path: str | None = None, operator: str | None = None) -> Session:
    """Open an existing database (NOT_FOUND if missing; never creates one)."""
    resolved = path or default_db_path()
    return Session(db.connect(resolved), resolved, operator or default_operator())


def init_session(path: str | None = None, operator: str | None = None) -> tuple[Session, int, bool]:
    resolved = path or default_db_path()
    conn, version, created = db.init(resolved)
    return Session(conn, resolved, operator or default_operator()), version, created

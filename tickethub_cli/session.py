"""A Session is what every service function works on: a connection and who is acting.

Scripts use it directly: ``s = tickethub_cli.open_session("box.db", operator="alice")``.
"""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING

from . import db

if TYPE_CHECKING:
    from .payments import PaymentProvider


def default_operator() -> str:
    env = os.environ.get("TICKETHUB_OPERATOR", "").strip()
    if env:
        return env
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name on this machine is not an error
        return f"uid{os.getuid()}"


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

            self._provider = MockProvider(self.conn)
        return self._provider

    def close(self) -> None:
        self.conn.close()


def open_session(path: str | None = None, operator: str | None = None) -> Session:
    """Open an existing database (NOT_FOUND if missing; never creates one)."""
    resolved = path or default_db_path()
    return Session(db.connect(resolved), resolved, operator or default_operator())


def init_session(path: str | None = None, operator: str | None = None) -> tuple[Session, int, bool]:
    resolved = path or default_db_path()
    conn, version, created = db.init(resolved)
    return Session(conn, resolved, operator or default_operator()), version, created

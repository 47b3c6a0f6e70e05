"""`init`: create or migrate the database."""

from __future__ import annotations

import typer

from .. import render
from .base import app
from .common import new_session, output


@app.command(
    "init",
    epilog="Example: `tickethub --db box.db init`",
)
def init_cmd(ctx: typer.Context) -> None:
    """Create the database file (mode 0600), or migrate an existing one. Safe to repeat."""
    from ..store.url import display

    s, version, created = new_session(ctx)
    where = display(s.path)  # a PostgreSQL URL's password is never printed
    payload = {"db": where, "schema_version": version, "created": created}
    verb = "created" if created else "up to date"
    output(ctx, payload, lambda: render.line(f"{where}: {verb}, schema version {version}"))

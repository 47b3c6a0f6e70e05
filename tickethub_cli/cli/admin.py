"""`init`: create or migrate the database."""

from __future__ import annotations

import typer

from .. import render
from ..store.url import display
from .base import app
from .common import new_session, output


@app.command(
    "init",
    epilog="Example: `tickethub --db box.db init`",
)
def init_cmd(ctx: typer.Context) -> None:
    """Create the database file (mode 0600), or migrate an existing one. Safe to repeat."""

    s, version, created = new_session(ctx)
    shown = display(s.path)  # a URL's password never reaches the output
    payload = {"db": shown, "schema_version": version, "created": created}
    verb = "created" if created else "up to date"
    output(ctx, payload, lambda: render.line(f"{shown}: {verb}, schema version {version}"))

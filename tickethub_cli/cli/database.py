"""`db`: operations on a whole database (`db copy`: move a box office to another one)."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Annotated, Any

import typer

from .. import render
from .base import app
from .common import globals_of, output

db_app = typer.Typer(
    help="Operations on a whole database: `db copy` moves a box office to another one.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")


@db_app.command(
    "copy",
    epilog="Example: `tickethub db copy --from box.db --to copy.db`;"
    " to PostgreSQL: tickethub db copy --from box.db --to postgresql://tickethub@db1/boxoffice",
)
def copy_cmd(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="DB",
            help="The box office to copy (a file or a postgresql:// URL; default: --db).",
        ),
    ] = None,
    target: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="DB",
            help="An empty database: a new file, or a PostgreSQL database made with createdb.",
        ),
    ] = ...,  # type: ignore[assignment]
) -> None:
    """Copy every table of a box office (events, orders, payments, tickets, scans, audit,
    tokens…) with its ids into an EMPTY database, in one transaction: all of it arrives, or
    nothing changes. The target gets its schema as `init` would give it; a target holding
    anything is refused (exit 4). The source is read in one snapshot while it keeps
    selling. SQLite ↔ PostgreSQL either way, or like to like."""
    from ..store.copy import copy

    g = globals_of(ctx)
    if not target.strip():
        from ..errors import invalid

        raise invalid("--to must name a database")
    bar = None if g.json or not sys.stderr.isatty() else _progress()
    with bar or nullcontext():
        task = bar.add_task("copying", total=None) if bar is not None else None

        def advance(table: str, done: int, total: int) -> None:
            if bar is not None and task is not None:
                bar.update(task, completed=done, total=total, description=table)

        result = copy(
            source or g.db,
            target,
            operator=g.operator,
            busy_budget_s=g.settings.busy_timeout_s,
            progress=advance if bar is not None else None,
        )
    output(ctx, {"copy": result.to_json()}, lambda: _show(result))


def _show(result: Any) -> None:
    render.table(
        f"{result.source} → {result.target}",
        ["table", "rows"],
        [[name, f"{n:,}"] for name, n in result.rows.items()],
        numeric=["rows"],
    )
    render.line(f"copied {result.total:,} rows in {result.seconds:.1f} s")


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=render.console(stderr=True),
        transient=True,
    )

"""`batch FILE`: many purchases from CSV or JSON Lines, safe to re-run."""

from __future__ import annotations

import os
import sqlite3
import sys
from contextlib import nullcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import render
from ..db import translate
from ..errors import ErrorCode, TicketHubError
from .base import app
from .common import is_json, session
from .errors import as_dict, exit_code

if TYPE_CHECKING:
    from .. import batch


def _count_rows(path: str) -> int | None:
    """About how many data rows a regular file has (lines minus header), for the progress
    bar's ETA. Counted in chunks: one huge line must not be read into memory."""
    if path == "-" or not os.path.isfile(path):
        return None
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        first = fh.read(64).lstrip()
        fh.seek(0)
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    lines += last != b"\n"
    return lines if first.startswith(b"{") else max(0, lines - 1)


@app.command(
    "batch",
    epilog="Examples: `tickethub --json batch sales.csv` · `cat sales.jsonl | tickethub batch -`"
    " · CSV header: idempotency_key,ticket_type_id,quantity,email,name,pay,card",
)
def batch_cmd(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(metavar="FILE", help="CSV or JSON Lines; - for stdin.")],
    stop_on_error: Annotated[
        bool, typer.Option("--stop-on-error", help="Stop at the first failing row.")
    ] = False,
) -> None:
    """Run many purchases, one per row, each with its own idempotency key. Rows that already
    ran are replayed, so re-running a file (even after a crash) never sells twice.
    Exit 0 when every row succeeded, 8 when some failed."""
    from .. import batch

    s = session(ctx)
    stream = batch.open_input(path)
    summary = batch.Summary()
    as_json = is_json(ctx)
    progress = None if as_json or not sys.stderr.isatty() else _progress()
    try:
        with progress or nullcontext():
            task = progress.add_task("selling", total=_count_rows(path)) if progress else None
            group = 1 if stop_on_error or not batch.is_regular_file(stream) else batch.GROUP
            rows = batch.run(
                s, stream, stop_on_error=stop_on_error, group_size=group, show_error=as_dict
            )
            for result in rows:
                summary.add(result)
                if as_json:
                    render.emit_json(result.to_json())
                if progress is not None and task is not None:
                    progress.advance(task)
    except (TicketHubError, sqlite3.Error) as exc:
        err = exc if isinstance(exc, TicketHubError) else translate(exc, s.path)
        if summary.rows == 0:
            raise err from None
        _finish(as_json, summary)  # what ran is committed: say so before failing
        render.error(err, as_json=as_json)
        raise typer.Exit(exit_code(err.code)) from None
    except KeyboardInterrupt:
        _finish(as_json, summary)  # Ctrl-C: the rows that ran are committed; say which
        sys.stderr.write(f"interrupted after {summary.rows} row(s)\n")
        raise typer.Exit(130) from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    _finish(as_json, summary)
    if summary.failed:
        raise typer.Exit(batch_exit_code())


def batch_exit_code() -> int:
    return exit_code(ErrorCode.BATCH_PARTIAL)


def _progress() -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed or 0:>7,.0f} rows/s")

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        console=render.console(stderr=True),
        transient=True,
    )


def _finish(as_json: bool, summary: batch.Summary) -> None:
    """The summary after the rows were committed: in human mode the tables, or their plain
    form if drawing fails, so the counts are never lost."""
    if as_json:
        render.emit_json({"summary": summary.to_json()})
        return
    shown = summary.failures  # the first few; the rest are counted only
    plain = {
        "failed_rows": [{"row": f.row, "key": f.idempotency_key, "error": f.error} for f in shown],
        "summary": summary.to_json(),
    }
    render.human_or_plain(lambda: _draw_finish(summary, shown), plain)


def _draw_finish(summary: batch.Summary, shown: list[batch.RowResult]) -> None:
    hidden = summary.failed - len(shown)
    if shown:
        render.table(
            "Failed rows",
            ("row", "key", "error", "message"),
            [
                [
                    f.row,
                    f.idempotency_key or "-",
                    (f.error or {}).get("code"),
                    (f.error or {}).get("message"),
                ]
                for f in shown
            ],
            caption=f"{hidden:,} more not shown (rerun with --json for every row)"
            if hidden
            else None,
        )
    render.table(
        "Batch summary",
        ("rows", "ok", "replayed", "failed"),
        [[summary.rows, summary.ok, summary.replayed, summary.failed]],
        numeric=("rows", "ok", "replayed", "failed"),
    )

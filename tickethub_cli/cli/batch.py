"""`batch FILE`: many purchases from CSV or JSON Lines, safe to re-run."""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import render
from ..db import DatabaseError, translate
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


class Show(StrEnum):
    """Which rows the human table lists (JSON always has every row)."""

    auto = "auto"
    failed = "failed"
    all = "all"
    none = "none"


@app.command(
    "batch",
    epilog="Examples: `tickethub --json batch sales.csv` · `cat sales.jsonl | tickethub batch -`"
    " · `tickethub batch sales.csv --show all`"
    " · CSV header: idempotency_key,ticket_type_id,quantity,email,name,pay,card"
    " (other columns are ignored and named; `,` `;` or tab, guessed from the header)",
)
def batch_cmd(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(metavar="FILE", help="CSV or JSON Lines; - for stdin.")],
    stop_on_error: Annotated[
        bool, typer.Option("--stop-on-error", help="Stop at the first failing row.")
    ] = False,
    delimiter: Annotated[
        str | None,
        typer.Option(
            "--delimiter",
            metavar="CHAR",
            help="CSV delimiter: , ; | or tab. Default: guessed from the header (, ; or tab).",
        ),
    ] = None,
    show: Annotated[
        Show,
        typer.Option(
            "--show",
            case_sensitive=False,
            help="Rows the table lists: auto (up to 20, failures first), failed, all, none.",
        ),
    ] = Show.auto,
) -> None:
    """Run many purchases, one per row, each with its own idempotency key. Rows that already
    ran are replayed, so re-running a file (even after a crash) never sells twice.
    Exit 0 when every row succeeded, 8 when some failed."""
    from .. import batch

    forced = batch.parse_delimiter(delimiter)
    s = session(ctx)
    stream = batch.open_input(path)
    source = batch.Source(stream, delimiter=forced)
    summary = batch.Summary(show=show.value)
    as_json = is_json(ctx)
    warned: list[str] = []
    progress = None if as_json or not sys.stderr.isatty() else _progress()
    try:
        source.open()  # a header that cannot be used is refused before any row runs
        if not as_json:
            _warn_ignored(source, warned)  # CSV: named now, before the rows run
        with progress or nullcontext():
            task = progress.add_task("selling", total=_count_rows(path)) if progress else None
            group = 1 if stop_on_error or not batch.is_regular_file(stream) else batch.GROUP
            rows = batch.run(
                s, source, stop_on_error=stop_on_error, group_size=group, show_error=as_dict
            )
            for result in rows:
                summary.add(result)
                if as_json:
                    render.emit_json(result.to_json())
                if progress is not None and task is not None:
                    progress.advance(task)
    except (TicketHubError, DatabaseError) as exc:
        err = exc if isinstance(exc, TicketHubError) else translate(exc, s.path)
        if summary.rows == 0:
            raise err from None
        _finish(as_json, summary, source, warned)  # what ran is committed: say so first
        render.error(err, as_json=as_json)
        raise typer.Exit(exit_code(err.code)) from None
    except KeyboardInterrupt:
        _finish(as_json, summary, source, warned)  # Ctrl-C: the rows that ran are committed
        sys.stderr.write(f"interrupted after {summary.rows} row(s)\n")
        raise typer.Exit(130) from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    _finish(as_json, summary, source, warned)
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


def _warn_ignored(source: batch.Source, warned: list[str]) -> None:
    """One warning line naming the columns the rows were read without (each named once:
    a CSV header's at the start, JSON Lines keys found on the way at the end)."""
    fresh = [name for name in source.ignored if name not in warned]
    if not fresh:
        return
    warned.extend(fresh)
    what = "column(s)" if source.format == "csv" else "field(s)"
    names = ", ".join(name or "(blank)" for name in fresh)
    render.warning(f"ignored {what} that batch does not use: {names}")


# What the table calls each failure code the summary counts apart; other codes shown as is.
LABELS = {
    "PAYMENT_DECLINED": "declined",
    "PAYMENT_UNKNOWN": "unknown",
    "SOLD_OUT": "sold out",
    "INVALID_INPUT": "invalid",
}


def _finish(as_json: bool, summary: batch.Summary, source: batch.Source, warned: list[str]) -> None:
    """The summary after the rows were committed: in human mode the table and the summary
    line, or their plain form if drawing fails, so the counts are never lost."""
    summary.ignored_columns = list(source.ignored)
    if as_json:
        render.emit_json({"summary": summary.to_json()})
        return
    _warn_ignored(source, warned)
    listed = summary.listed
    plain = {
        "rows": [dict(zip(ROW_COLUMNS, _cells(r), strict=True)) for r in listed],
        "summary": summary.to_json(),
    }
    render.human_or_plain(lambda: _draw_finish(summary, listed), plain)


ROW_COLUMNS = ("row", "key", "result", "buyer", "detail")
TABLE_CHUNK = 1000  # rows drawn as one table: Rich holds a whole table's cells while drawing


def _cells(r: batch.Shown) -> list[Any]:
    if r.ok:
        result = "replayed" if r.replayed else "sold"
        parts = [f"order {r.order_id}"]
        if r.tickets is not None:
            parts.append(f"{r.tickets} ticket{'' if r.tickets == 1 else 's'}")
        if r.total:
            parts.append(r.total)
        detail = " · ".join(parts)
    else:
        result = LABELS.get(r.code or "", r.code or "failed")
        detail = r.message or ""
    return [r.row, r.key or "-", result, r.buyer or "-", detail]


def _draw_finish(summary: batch.Summary, listed: list[batch.Shown]) -> None:
    if listed:
        _rows_table(summary, listed)
    render.line(summary_line(summary))


def _rows_table(summary: batch.Summary, listed: list[batch.Shown]) -> None:
    """Every cell literal text (render.text). Keys and buyers are cut with an ellipsis to
    leave the detail room to wrap at words, so the table stays readable at 80 columns; on
    a narrower terminal the buyer, then the key, make way for the detail."""
    from rich.table import Table

    cells = [[render.safe_text(c) for c in _cells(r)] for r in listed]
    want = [max(len(name), *(len(row[i]) for row in cells)) for i, name in enumerate(ROW_COLUMNS)]
    caps = {"key": 16, "result": 20, "buyer": 18}
    widths = {name: min(w, caps.get(name, w)) for name, w in zip(ROW_COLUMNS, want, strict=True)}
    detail_min = min(widths.pop("detail"), 24)
    for dropped in ("buyer", "key"):  # what to give up when even 6 characters do not fit
        room = render.console().width - 3 * (len(widths) + 1) - 1 - widths["row"]
        room -= widths["result"] + detail_min
        if room >= 6 * (len(widths) - 2):
            break
        widths.pop(dropped)
    wanted = sum(widths.get(name, 0) for name in ("key", "buyer"))
    if wanted > room:  # cut key and buyer to the room left, each keeping a fair share
        if "key" in widths and "buyer" in widths:
            key = min(widths["key"], max(room // 2, room - widths["buyer"]))
            widths["key"], widths["buyer"] = max(key, 3), max(room - key, 3)
        elif "key" in widths:
            widths["key"] = max(room, 3)
    hidden = summary.not_listed
    shown = [i for i, name in enumerate(ROW_COLUMNS) if name in widths or name == "detail"]
    if len(cells) > TABLE_CHUNK:  # every chunk's detail as wide, so the chunks line up
        edges = 3 * len(shown) + 1
        widths["detail"] = max(detail_min, render.console().width - edges - sum(widths.values()))
    for start in range(0, len(cells), TABLE_CHUNK):
        first, last = start == 0, start + TABLE_CHUNK >= len(cells)
        title = "Failed rows" if summary.show == "failed" else "Rows (failures first)"
        table = Table(
            title=render.text(title) if first else None,
            caption=render.text(f"{hidden:,} more not shown — use --show all")
            if hidden and last
            else None,
            title_justify="left",
            caption_justify="left",
            header_style="bold",
            show_header=first,
        )
        for i in shown:
            name = ROW_COLUMNS[i]
            if name == "detail":
                table.add_column(render.text(name), overflow="fold", width=widths.get(name))
            else:
                table.add_column(
                    render.text(name),
                    justify="right" if name == "row" else "left",
                    no_wrap=True,
                    overflow="ellipsis",
                    width=widths[name],
                )
        for row in cells[start : start + TABLE_CHUNK]:
            table.add_row(*(render.text(row[i]) for i in shown))
        render.console().print(table)  # drawn and let go: memory stays bounded by a chunk


def summary_line(summary: batch.Summary) -> str:
    """`Batch summary: 1,000 rows · 980 sold · 12 replayed · 5 declined · …`: what became
    of every row, each failure kind on its own (they need different actions)."""
    from .. import batch

    sm = summary
    parts = [f"{sm.rows:,} row{'' if sm.rows == 1 else 's'}", f"{sm.ok - sm.replayed:,} sold"]
    if sm.replayed:
        parts.append(f"{sm.replayed:,} replayed")
    if sm.declined:
        parts.append(f"{sm.declined:,} declined")
    if sm.unknown:
        parts.append(f"{sm.unknown:,} payment unknown (run reconcile)")
    if sm.sold_out:
        parts.append(f"{sm.sold_out:,} sold out")
    if sm.invalid:
        parts.append(f"{sm.invalid:,} invalid")
    if sm.other:
        codes = ", ".join(
            f"{code} {n:,}" for code, n in sorted(sm.errors.items()) if code not in batch.CATEGORIES
        )
        parts.append(f"{sm.other:,} other failure{'' if sm.other == 1 else 's'} ({codes})")
    return "Batch summary: " + " · ".join(parts)

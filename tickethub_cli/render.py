"""The one renderer: JSON for scripts, Rich tables and panels for people.

Rich is imported only when a person is looking, so `--json` commands start fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import TicketHubError

if TYPE_CHECKING:
    from rich.console import Console

_consoles: dict[bool, Console] = {}


def console(stderr: bool = False) -> Console:
    if stderr not in _consoles:
        from rich.console import Console

        _consoles[stderr] = Console(stderr=stderr, highlight=False, soft_wrap=False)
    return _consoles[stderr]


def reset() -> None:
    """Forget cached consoles (the streams change between CliRunner invocations)."""
    _consoles.clear()


def dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(", ", ": "), default=str)


def emit_json(payload: Any) -> None:
    sys.stdout.write(dumps(payload) + "\n")
    sys.stdout.flush()


def error(err: TicketHubError, *, as_json: bool) -> None:
    if as_json:
        sys.stderr.write(dumps({"error": err.to_dict()}) + "\n")
    else:
        line = f"error: {err.message} [{err.code}]"
        if err.order_id is not None and f"order {err.order_id}" not in err.message:
            line += f" (order {err.order_id})"
        if err.hint:  # the contract is one line on stderr: the hint rides along on it
            line += f"; hint: {err.hint}"
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Iterable[str] = (),
    caption: str | None = None,
) -> None:
    from rich.table import Table

    right = set(numeric)
    t = Table(title=title, caption=caption, title_justify="left", header_style="bold")
    for col in columns:
        t.add_column(
            col,
            justify="right" if col in right else "left",
            overflow="fold",
            no_wrap=col in right,  # numbers are short; text folds to fit the terminal
        )
    for row in rows:
        t.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(t)


def fields(title: str, pairs: Sequence[tuple[str, Any]], *, style: str = "cyan") -> None:
    """A small key/value panel for one record."""
    from rich.panel import Panel
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in pairs:
        grid.add_row(key, "" if value is None else str(value))
    console().print(Panel(grid, title=title, title_align="left", border_style=style))


def line(text: str, *, style: str | None = None) -> None:
    console().print(text, style=style, markup=False, soft_wrap=True)


def ticket_type_rows(types: Iterable[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            t["id"],
            t["name"],
            f"{t['price']} {t['currency']}",
            t["capacity"],
            t["sold"],
            t["held"],
            t["available"],
            t["max_per_order"],
        ]
        for t in types
    ]


TICKET_TYPE_COLUMNS = ("id", "name", "price", "capacity", "sold", "held", "available", "max/order")
TICKET_TYPE_NUMERIC = ("id", "capacity", "sold", "held", "available", "max/order")

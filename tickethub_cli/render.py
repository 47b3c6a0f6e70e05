"""The one renderer: JSON for scripts, Rich tables and panels for people.

Rich is imported only when a person is looking, so `--json` commands start fast.

Hostile text: every value shown to a person goes through `safe_text` (terminal and bidi
controls become visible escapes such as `\\x1b` or `\\u202e`) and reaches Rich as a `Text`,
never as a markup string, so `[/]`, `[link=…]` or `:smile:` in a name is printed as typed.
The helpers here (`text`, `table`, `fields`, `line`, `error`, `warning`) are how every
command prints for people; `human_or_plain` makes sure that a drawing failure after a commit
still shows the result instead of turning it into exit 1.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import TicketHubError
from .validation import UNSAFE_CHARS

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

# What a terminal must never receive raw: the input rule's characters, plus lone surrogates
# (bytes of argv that were not UTF-8), which a UTF-8 stream cannot even encode.
_UNSHOWABLE = re.compile(UNSAFE_CHARS.pattern[:-1] + "\ud800-\udfff]")
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_consoles: dict[bool, Console] = {}


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: Any) -> str:
    """The text of `value` as a person may see it: controls and bidi controls written as
    escapes, so stored text can neither drive the terminal nor disguise what it says."""
    text = "" if value is None else str(value)
    if _UNSHOWABLE.search(text) is None:  # every ordinary value: no copy
        return text
    return _UNSHOWABLE.sub(_escape, text)


def text(value: Any, style: str = "") -> Text:
    """`value` as a Rich `Text`: shown literally, never parsed as markup or emoji codes."""
    from rich.text import Text

    return Text(safe_text(value), style=style)


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run (OWASP CSV injection): text starting with a
    formula character gets a leading `'`. Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START):
        return "'" + value
    return value


def write_csv(stream: Any, rows: Iterable[Sequence[Any]]) -> None:
    """CSV for spreadsheets: every cell through `csv_cell`. A row with a carriage return in
    a cell is written fully quoted: the csv module quotes only the line terminator's own
    characters (`\\n` here), and a bare CR would start a new row, formula and all."""
    import csv

    plain = csv.writer(stream, lineterminator="\n")
    quoted = csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    for row in rows:
        cells = [csv_cell(cell) for cell in row]
        carriage = any(isinstance(cell, str) and "\r" in cell for cell in cells)
        (quoted if carriage else plain).writerow(cells)


def console(stderr: bool = False) -> Console:
    if stderr not in _consoles:
        from rich.console import Console

        _consoles[stderr] = Console(stderr=stderr, highlight=False, soft_wrap=False)
    return _consoles[stderr]


def reset() -> None:
    """Forget cached consoles (the streams change between CliRunner invocations)."""
    _consoles.clear()


def dumps(payload: Any) -> str:
    """One JSON document. Besides the C0 controls JSON always escapes, the other characters
    of `_UNSHOWABLE` are written as `\\uXXXX` too: the same string to a parser, and inert on
    a terminal that shows the JSON."""
    out = json.dumps(payload, ensure_ascii=False, separators=(", ", ": "), default=str)
    if _UNSHOWABLE.search(out) is None:
        return out
    return _UNSHOWABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", out)


def emit_json(payload: Any) -> None:
    sys.stdout.write(dumps(payload) + "\n")
    sys.stdout.flush()


def error(err: TicketHubError, *, as_json: bool) -> None:
    """An error on stderr as the CLI shows it (fields as flags, the CLI's hints)."""
    from .cli import errors as shown

    if as_json:
        sys.stderr.write(dumps({"error": shown.as_dict(err)}) + "\n")
    else:
        message, hint = shown.message(err), shown.hint(err)
        line = f"error: {message} [{err.code}]"
        if err.order_id is not None and f"order {err.order_id}" not in message:
            line += f" (order {err.order_id})"
        if hint:  # the contract is one line on stderr: the hint rides along on it
            line += f"; hint: {hint}"
        _write(sys.stderr, safe_text(line) + "\n")  # messages quote what the user typed
    sys.stderr.flush()


def warning(message: str) -> None:
    """One line on stderr beside a result that stands (a sale that was not printed)."""
    _write(sys.stderr, f"warning: {safe_text(message)}\n")
    sys.stderr.flush()


def _write(stream: Any, data: str) -> None:
    """Write plain text that must arrive: on a stream that cannot encode some character
    (an ASCII locale), that character is written as an escape instead of failing."""
    try:
        stream.write(data)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(data.encode(encoding, "backslashreplace").decode(encoding))


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Iterable[str] = (),
    caption: str | None = None,
) -> None:
    """A table whose title, headers and cells are all literal text (see `text`)."""
    from rich.table import Table

    right = set(numeric)
    t = Table(
        title=None if title is None else text(title),
        caption=None if caption is None else text(caption),
        title_justify="left",
        header_style="bold",
    )
    for col in columns:
        t.add_column(
            text(col),
            justify="right" if col in right else "left",
            overflow="fold",
            no_wrap=col in right,  # numbers are short; text folds to fit the terminal
        )
    for row in rows:
        t.add_row(*(text(cell) for cell in row))
    console().print(t)


def fields(title: str, pairs: Sequence[tuple[str, Any]], *, style: str = "cyan") -> None:
    """A small key/value panel for one record; title, keys and values are literal text."""
    from rich.panel import Panel
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in pairs:
        grid.add_row(text(key), text(value))
    console().print(Panel(grid, title=text(title), title_align="left", border_style=style))


def line(value: Any, *, style: str | None = None) -> None:
    """One literal line (soft-wrapped: a plain result line is never cut or folded)."""
    console().print(text(value, style or ""), soft_wrap=True)


def panel(body: Text, *, style: str, padding: tuple[int, int] = (1, 4)) -> None:
    """A full-width panel around a `Text` built from `text()` pieces (the gate's answer)."""
    from rich.panel import Panel

    console().print(Panel(body, style=style, padding=padding, expand=True))


def human_or_plain(draw: Callable[[], None], payload: Mapping[str, Any]) -> None:
    """Draw the human view; if drawing fails anyway (a Rich bug, a terminal it cannot
    measure), print `payload` as plain `key: value` lines instead. The result was committed
    before this is called, so it must reach the user: the order id and its idempotency key
    matter more than the table, and exit 1 would invite a retry that charges again."""
    try:
        draw()
    except (BrokenPipeError, KeyboardInterrupt):
        raise  # nobody is reading, or the user asked to stop: nothing to fall back to
    except Exception as exc:  # noqa: BLE001 - any drawing bug: fall back, never lose the result
        warning(f"could not draw the result ({type(exc).__name__}); plain form follows")
        plain(payload)


def plain(payload: Mapping[str, Any]) -> None:
    """`payload` flattened to one escaped `path: value` line per field, without Rich."""
    lines = [f"{safe_text(key)}: {safe_text(value)}" for key, value in _flatten(payload, "")]
    _write(sys.stdout, "\n".join(lines) + "\n")
    sys.stdout.flush()


def _flatten(value: Any, path: str) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _flatten(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple) and value:
        for i, inner in enumerate(value):
            yield from _flatten(inner, f"{path}[{i}]")
    else:  # text as it is; numbers, booleans, null and [] as JSON writes them
        yield path, value if isinstance(value, str) else json.dumps(value, default=str)


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

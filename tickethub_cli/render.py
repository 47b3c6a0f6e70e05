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
from typing import TYPE_CHECKING, Any, NamedTuple

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


class Col(NamedTuple):
    """One column of a table for people. `kind` decides how it behaves at a narrow width:
    "id", "num" and "money" are right-aligned and never wrap; "time" and "word" (a status,
    a code) never wrap; "text" (a name) is cut with an ellipsis rather than wrapped into a
    tower of letters; "long" (a reason, a message) wraps. When the terminal is too narrow,
    columns with the highest `drop` go first (0: always kept), and a "time" column switches
    to its short form ("06-01 20:00") at its `shorten` priority."""

    header: str
    kind: str = "text"
    drop: int = 0
    shorten: int = 0
    min_width: int = 8


class When(NamedTuple):
    """A stored UTC time in a table cell, shown in `zone` (full or short, as room allows)."""

    utc: str | None
    zone: str | None

    def shown(self, short: bool = False) -> str:
        from . import clock

        return clock.local_text(self.utc, self.zone, form="short" if short else "full")


class Named(NamedTuple):
    """A name with its id, "Jazz Night (#1)": when room is short the name is cut, never
    the id (the id is what the next command needs)."""

    name: Any
    id: Any

    def fit(self, width: int | None = None) -> str:
        tag = f" (#{self.id})"
        name = safe_text(self.name)
        if width is not None and cell_width(name) + len(tag) > width:
            name = ellipsize(name, max(1, width - len(tag)))
        return name + tag


_FIXED = {"id", "num", "money", "time", "word"}
_RIGHT = {"id", "num", "money"}


def cell_width(value: str) -> int:
    from rich.cells import cell_len

    return cell_len(value)


def ellipsize(value: str, width: int) -> str:
    """`value` cut to `width` terminal cells, the cut marked with "…"."""
    if cell_width(value) <= width:
        return value
    from rich.cells import set_cell_size

    return set_cell_size(value, max(0, width - 1)) + "…"


def named(name: Any, ident: Any) -> str:
    """ "Jazz Night (#1)": a name and the id a command needs, side by side."""
    return Named(name, ident).fit()


def amount(minor: int, currency: str) -> str:
    """Money as people read it: "451.25 EUR" (never minor units)."""
    from .money import format_amount

    return f"{format_amount(minor, currency)} {currency}"


def moment(utc: str | None, zone: str | None) -> str:
    """A recent moment as people at the event say it: "20:39 CET" when it was today
    there, else the full local time (never UTC microseconds)."""
    from . import clock

    full = clock.local_text(utc, zone)
    if utc and full[:10] == clock.local_text(clock.now_text(), zone)[:10]:
        return clock.local_text(utc, zone, form="time")
    return full


def _cell(value: Any, short: bool, width: int | None) -> str:
    if isinstance(value, When):
        return value.shown(short)
    if isinstance(value, Named):
        return value.fit(width)
    return safe_text(value)


def _layout(
    cols: list[Col], rows: list[list[Any]], width: int
) -> tuple[list[int], set[int], dict[int, int]]:
    """Which columns fit `width` (indexes kept), which time columns go short, and the width
    of each cut ("text"/"long") column that must shrink. Columns are dropped and times
    shortened, highest priority first, until the narrowest form of the table fits."""
    kept = list(range(len(cols)))
    short: set[int] = set()

    def natural(i: int) -> int:
        cells = [cell_width(_cell(r[i], i in short, None)) for r in rows]
        return max([cell_width(cols[i].header), *cells])

    def least(i: int) -> int:
        if cols[i].kind in _FIXED:
            return natural(i)
        return min(natural(i), max(cols[i].min_width, cell_width(cols[i].header)))

    steps = sorted(
        [(c.drop, 0, i) for i, c in enumerate(cols) if c.drop]
        + [(c.shorten, 1, i) for i, c in enumerate(cols) if c.kind == "time" and c.shorten],
        reverse=True,
    )
    for _, action, i in steps:
        if sum(least(k) for k in kept) + 3 * len(kept) + 1 <= width:
            break
        if action == 0:
            kept.remove(i)
        else:
            short.add(i)
    room = width - 3 * len(kept) - 1 - sum(natural(k) for k in kept if cols[k].kind in _FIXED)
    flex = [k for k in kept if cols[k].kind not in _FIXED]
    widths: dict[int, int] = {}
    if flex and sum(natural(k) for k in flex) > room:
        base = {k: least(k) for k in flex}
        spare = max(0, room - sum(base.values()))
        want = {k: natural(k) - base[k] for k in flex}
        total_want = sum(want.values()) or 1
        for k in flex:
            widths[k] = base[k] + spare * want[k] // total_want
    return kept, short, widths


def table(
    title: str | None,
    columns: Sequence[str | Col],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Iterable[str] = (),
    caption: str | None = None,
) -> None:
    """A table whose title, headers and cells are all literal text (see `text`), laid out
    for the terminal's width: ids, numbers, money and times are never wrapped, names are cut
    with "…", and low-value columns are dropped when the terminal is narrow (see `Col`).
    Plain string headers are long-text columns, or numbers when listed in `numeric`."""
    from rich.table import Table
    from rich.text import Text

    right = set(numeric)
    cols = [
        c if isinstance(c, Col) else Col(c, "num" if c in right else "long", min_width=10)
        for c in columns
    ]
    data = [list(r) for r in rows]
    out = console()
    kept, short, widths = _layout(cols, data, out.width)
    if title is not None:  # on a line of its own: cut at the terminal, not at the table
        out.print(text(title, "italic"), no_wrap=True, overflow="ellipsis")
    t = Table(header_style="bold")
    for i in kept:
        col = cols[i]
        t.add_column(
            text(col.header),
            justify="right" if col.kind in _RIGHT else "left",
            overflow="fold" if col.kind == "long" else "ellipsis",
            no_wrap=col.kind in _FIXED,
            width=widths.get(i),
        )
    for row in data:
        cells = []
        for i in kept:
            shown = Text(_cell(row[i], i in short, widths.get(i)))
            if cols[i].kind == "text":
                shown.no_wrap, shown.overflow = True, "ellipsis"
            cells.append(shown)
        t.add_row(*cells)
    out.print(t)
    if caption is not None:
        out.print(text(caption, "dim"))


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


def line(value: Any, *, style: str | None = None, wrap: bool = False) -> None:
    """One literal line (soft-wrapped: a plain result line is never cut or folded, so a
    log or grep sees it whole). `wrap`: a sentence for a person, wrapped at the terminal's
    width between words."""
    console().print(text(value, style or ""), soft_wrap=not wrap)


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


# Shared column sets: one definition per kind of row, used by every command that lists it.

TICKET_TYPE_COLUMNS = (
    Col("id", "id"),
    Col("name", min_width=10),
    Col("price", "money"),
    Col("seats", "num"),
    Col("sold", "num"),
    Col("held", "num", drop=1),
    Col("free", "num"),
    Col("max/order", "num", drop=3),
    Col("sales", "word", drop=2),
)


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
            t.get("sales") or "open",
        ]
        for t in types
    ]


EVENT_COLUMNS = (
    Col("id", "id"),
    Col("name", min_width=12),
    Col("starts", "time", shorten=3),
    Col("venue", drop=4),
    Col("cur", "word", drop=6),
    Col("types", "num", drop=5),
    Col("seats", "num", drop=2),
    Col("sold", "num"),
    Col("free", "num"),
)


def event_rows(events: Iterable[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            e["id"],
            e["name"],
            When(e["starts_at"], e["timezone"]),
            e["venue"] or "-",
            e["currency"],
            e["ticket_type_count"],
            e["capacity"],
            e["sold"],
            # a called-off event says so where its free seats would be: a name cut to fit
            # 80 columns still shows which event it is
            e["available"] if e.get("status", "on_sale") == "on_sale" else e["status"],
        ]
        for e in events
    ]


ORDER_COLUMNS = (
    Col("id", "id"),
    Col("status", "word"),
    Col("event", min_width=10, drop=2),
    Col("seats", "num", drop=4),
    Col("total", "money"),
    Col("buyer", min_width=10),
    Col("created", "time", shorten=3),
)


def order_rows(orders: Iterable[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            o["id"],
            o["status"],
            Named(o["event_name"], o["event_id"]) if "event_name" in o else o["event_id"],
            o["seats"],
            f"{o['total']} {o['currency']}",
            o["name"] or o["email"] or "walk-in",
            When(o["created_at"], o.get("timezone")),
        ]
        for o in orders
    ]

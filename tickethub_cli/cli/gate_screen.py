"""The gate's full-screen view for the people at the door.

One result at a time, redrawn whole on each scan, so an ADMIT never sits under the red of
the scans before it. It reads from two metres without colour: the word in huge letters
(a FIGlet banner) beside a distinct block-drawn shape (a tick, a cross, an equals sign for a
double read, a question mark for a scan that was not judged), the reason in words, the
ticket type and holder, and the running totals in a footer. A trial (`--dry-run`) is drawn
in thin letters and light shading and says WOULD ADMIT: it never looks like an admission.

`build` is a pure function from what happened to the lines of the screen (testable without
a terminal); `GateScreen` owns the terminal: the alternate screen, the cursor, resizes, and
putting everything back on the way out. Stored text (names, gates, what was typed) reaches
the screen only through `render.safe_text` and plain `Text`, never as markup. pyfiglet is
imported here only, and this module only when a person runs the gate on a terminal.
"""

from __future__ import annotations

import os
import sys
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import cache
from typing import TYPE_CHECKING, Any

from .. import render
from ..checkin import REJECTIONS, Counters, ScanResult, is_double_read, seconds_since_first_use
from .gate import REASONS

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

BIG_FONT = "ansi_regular"  # solid block letters: the heaviest strokes, readable from afar
SMALL_FONT = "small"  # thin letters: smaller terminals, and every trial scan
GAP = "   "  # between the shape and the word
PROMPT = "scan ▸ "
STOP_HINT = "Ctrl-C or Ctrl-D: stop"

# Shapes drawn in block characters: each tells the result without colour or words.
SHAPES: dict[str, tuple[list[str], list[str]]] = {  # name: (big, small)
    "check": (
        [
            "             ███",
            "           ███  ",
            "███      ███    ",
            "  ███  ███      ",
            "   ██████       ",
            "    ████        ",
            "     ██         ",
        ],
        ["       ██", "██   ██  ", " ██ ██   ", "  ███    "],
    ),
    "cross": (
        [
            "███        ███",
            "  ███    ███  ",
            "    ██████    ",
            "     ████     ",
            "    ██████    ",
            "  ███    ███  ",
            "███        ███",
        ],
        ["██    ██", "  ████  ", "  ████  ", "██    ██"],
    ),
    "same": (
        [
            "              ",
            "██████████████",
            "██████████████",
            "              ",
            "██████████████",
            "██████████████",
            "              ",
        ],
        ["████████", "        ", "████████", "        "],
    ),
    "retry": (
        [
            "  ████████  ",
            "███      ███",
            "        ███ ",
            "     ████   ",
            "     ██     ",
            "            ",
            "     ██     ",
        ],
        [" ██████ ", "     ██ ", "   ██   ", "   ██   "],
    ),
}
GLYPHS = {"check": "✓", "cross": "✗", "same": "=", "retry": "?"}
FOOTER_WORDS = {
    "ALREADY_USED": "already used",
    "UNKNOWN": "unknown",
    "WRONG_EVENT": "wrong event",
    "VOID": "cancelled",
    "MALFORMED": "mistyped",
}


@dataclass(frozen=True)
class Look:
    """How one result is drawn: the banner word, the shape, the colours, the bell."""

    word: str
    shape: str
    style: str
    trial: bool = False
    double_read: bool = False
    bell: bool = False


@dataclass
class View:
    """Everything one frame shows. `result` is None before the first scan; `tz` is the
    time zone for times shown (None: this machine's, the clock on the gate's wall)."""

    event_id: int
    event_name: str
    gate: str | None
    counters: Counters
    now_us: int
    result: ScanResult | None = None
    dry_run: bool = False
    tz: tzinfo | None = None


def look_of(result: ScanResult, gate: str | None, now_us: int) -> Look:
    if result.error is not None:  # the database could not judge it: nothing was decided
        return Look("RETRY", "retry", "bold white on magenta", bell=True)
    if result.dry_run:  # a trial: thin letters, light shading, never the word ADMIT alone
        word = "WOULD ADMIT" if result.admitted else "WOULD REJECT"
        shape = "check" if result.admitted else "cross"
        return Look(word, shape, "bold white on blue", trial=True, bell=not result.admitted)
    if result.admitted:
        return Look("ADMIT", "check", "bold black on green")
    if is_double_read(result, gate, now_us):  # the holder just went in: calm, no bell
        return Look("SAME", "same", "bold black on yellow", double_read=True)
    return Look("REJECT", "cross", "bold white on red", bell=True)


@cache
def banner(word: str, font: str) -> tuple[str, ...]:
    """`word` in FIGlet letters, blank rows and the common right margin trimmed."""
    import pyfiglet

    rows = pyfiglet.Figlet(font=font, width=1000).renderText(word).split("\n")
    rows = [r.rstrip() for r in rows]
    while rows and not rows[-1]:
        rows.pop()
    while rows and not rows[0]:
        rows.pop(0)
    wide = max((len(r) for r in rows), default=0)
    return tuple(r.ljust(wide) for r in rows)


def _shape(name: str, big: bool, trial: bool) -> list[str]:
    rows = SHAPES[name][0 if big else 1]
    return [r.replace("█", "░") for r in rows] if trial else list(rows)


def _beside(left: list[str], right: list[str]) -> list[str]:
    """Two blocks side by side, each centred on the taller one's height."""
    height = max(len(left), len(right))
    lw = max((len(r) for r in left), default=0)
    rw = max((len(r) for r in right), default=0)

    def padded(rows: list[str], w: int) -> list[str]:
        top = (height - len(rows)) // 2
        return [" " * w] * top + [r.ljust(w) for r in rows] + [" " * w] * (height - top - len(rows))

    return [a + GAP + b for a, b in zip(padded(left, lw), padded(right, rw), strict=True)]


def big_block(look: Look, width: int, rows: int) -> list[str]:
    """The largest shape and word that fit `width` x `rows`: block letters beside the big
    shape, drawn twice as tall, then as they are; the same with a small shape; then thin
    letters; and at last the word spaced out beside its glyph. A trial never uses the
    block letters of a real result, nor is a thin word drawn twice as tall."""
    fonts = [SMALL_FONT] if look.trial else [BIG_FONT, SMALL_FONT]
    tries = [(f, big, tall) for f in fonts for big in (True, False) for tall in (2, 1)]
    for font, big_shape, tall in tries:
        if tall == 2 and font != BIG_FONT:
            continue
        shape = _shape(look.shape, big_shape, look.trial)
        block = _beside(shape, list(banner(look.word, font)))
        block = [row for row in block for _ in range(tall)]
        if len(block[0]) <= width and len(block) <= rows:
            return block
    plain = f"{GLYPHS[look.shape]}  {' '.join(look.word)}  {GLYPHS[look.shape]}"
    if len(plain) > width:
        plain = f"{GLYPHS[look.shape]} {look.word}"
    return [plain]


def _local(at: str, tz: tzinfo | None, now_us: int) -> str:
    """A stored UTC time as the gate's wall clock shows it: seconds, no microseconds; the
    date too when it is not today."""
    try:
        dt = datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(tz)
    except (ValueError, OverflowError):
        return render.safe_text(at)
    today = datetime.fromtimestamp(now_us / 1_000_000, dt.tzinfo).date()
    return dt.strftime("%H:%M:%S" if dt.date() == today else "%Y-%m-%d %H:%M:%S")


def ago(seconds: float) -> str:
    """A short age for people: "1 s ago" (never "0 s"), "4 min ago", "2 h 5 min ago"."""
    s = int(seconds)
    if s < 60:
        return f"{max(1, s)} s ago"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min ago"
    days = s // 86400
    return f"{days} day ago" if days == 1 else f"{days} days ago"


def where(result: ScanResult, gate: str | None) -> str:
    if result.gate == gate:
        return "at this gate"
    if result.gate is None:
        return "at a gate with no name"
    return f"at gate {render.safe_text(result.gate)}"


def reason_lines(view: View, look: Look) -> list[str]:
    """The result in words: why, and for a ticket already used, when and where."""
    r = view.result
    if r is None:
        return ["Ready. Scan a ticket, or type its code and press Enter."]
    if r.error is not None:
        message = render.safe_text(r.error.get("message", ""))
        return [f"{REASONS['ERROR']} ({render.safe_text(r.error.get('code'))})", message]
    if r.result == "ALREADY_USED":
        secs = seconds_since_first_use(r, view.now_us) or 0.0
        at = _local(r.first_used_at or "", view.tz, view.now_us)
        when = f"admitted {ago(secs)} {where(r, view.gate)} ({at})"
        if look.double_read:
            return [f"same ticket again: {when}", "already let in once; not admitted twice"]
        return [f"already used: {when}"]
    text = f"{REASONS[r.result]} ({r.result})"
    if r.result == "WRONG_EVENT":
        name = render.safe_text(r.event_name) if r.event_name is not None else "?"
        text = f"ticket for another event: {name} (event {r.event_id})"
    if r.dry_run:
        return [text, "trial run: nobody is admitted"]
    return [text]


def detail_lines(view: View) -> list[str]:
    r = view.result
    if r is None:
        return []
    parts = []
    if r.ticket_type is not None:
        parts.append(f"type {render.safe_text(r.ticket_type)}")
    if r.ticket_id is not None:
        parts.append(f"holder {render.safe_text(r.holder)}" if r.holder else "no holder name")
    shown = [" · ".join(parts)] if parts else []
    scan = f"scan {view.counters.scanned} at {_local_now(view)} · code {render.safe_text(r.code)}"
    return [*shown, scan]


def _local_now(view: View) -> str:
    """The time of this scan on the gate's wall clock (`tz`, else this machine's zone)."""
    return datetime.fromtimestamp(view.now_us / 1_000_000, view.tz).strftime("%H:%M:%S")


def footer_text(c: Counters) -> str:
    rejected = c.scanned - c.admitted - c.errors
    text = f"scanned {c.scanned} · admitted {c.admitted} · rejected {rejected}"
    why = [f"{FOOTER_WORDS[k]} {c.rejected[k]}" for k in REJECTIONS if c.rejected.get(k)]
    if why:
        text += " (" + ", ".join(why) + ")"
    if c.errors:
        text += f" · not checked {c.errors}"
    return text


def header_text(view: View) -> tuple[str, str]:
    gate = f"gate {render.safe_text(view.gate)}" if view.gate else "gate (no name)"
    left = f"{render.safe_text(view.event_name)} (event {view.event_id}) · {gate}"
    if view.dry_run:
        left = f"TRIAL RUN, nobody is admitted · {left}"
    return left, STOP_HINT


def _fit(value: str, width: int, style: str = "", *, centre: bool = False) -> Text:
    """One screen row: `value` cut to `width` cells (with …), padded to the full width so
    its style (the result's colour) fills the row."""
    from rich.cells import cell_len
    from rich.text import Text

    if centre:
        value = " " * max(0, (width - cell_len(value)) // 2) + value
    row = Text(value, style=style, no_wrap=True, overflow="ellipsis")
    row.truncate(width, overflow="ellipsis", pad=True)
    return row


def _wrap(value: str, width: int, most: int) -> list[str]:
    """At most `most` rows of `value`, split at spaces, the last one cut (by `_fit`)."""
    import textwrap

    rows = textwrap.wrap(value, width=max(width, 1), break_long_words=True) or [""]
    if len(rows) > most:
        rows = [*rows[: most - 1], " ".join(rows[most - 1 :])]
    return rows


def build(view: View, width: int, height: int) -> tuple[list[Text], int]:
    """The screen for `view` on a `width` x `height` terminal: exactly `height` rows, none
    wider than `width`, and the row of the input prompt (-1: none). What must be seen keeps
    its place on a small terminal (the word and shape, the reason, the header, the footer);
    spacing, details and the prompt give way first."""
    from rich.cells import cell_len

    width, height = max(width, 1), max(height, 1)
    look = look_of(view.result, view.gate, view.now_us) if view.result is not None else None
    style = look.style if look is not None else ""
    left, right = header_text(view)
    room = width - cell_len(left) - 2
    head = f"{left}  {right:>{room}}" if room >= cell_len(right) else left
    reasons = reason_lines(view, look or Look("", "check", ""))
    details = detail_lines(view)
    footer = _wrap(footer_text(view.counters), width, 2)
    block: list[str] = []
    if look is not None:
        room_for_block = height - 1 - len(reasons) - len(footer)
        block = big_block(look, width, max(1, room_for_block - len(details) - 3))
        if len(block) < 4:  # a short terminal: the shape and word before the details
            block = big_block(look, width, max(1, room_for_block))
    # (priority, rows, style, centred), top to bottom; the lowest priority goes first
    sections: list[tuple[int, list[str], str, bool]] = [
        (9, [head], "reverse", False),
        (2, [""], style, False),
        (10, block, f"{style} bold" if style else "bold", True),
        (3, [""], style, False),
        (8, reasons, f"{style} bold" if style else "bold", True),
        (4, details, style, True),
        (5, [PROMPT], "", False),
        (7, footer, "reverse", False),
    ]
    while sum(len(rows) for _, rows, _, _ in sections) > height:
        lowest = min(p for p, rows, _, _ in sections if rows)
        sections = [(p, [] if p == lowest else rows, s, c) for p, rows, s, c in sections]
    filler = height - sum(len(rows) for _, rows, _, _ in sections)
    out: list[Text] = []
    prompt_row = -1
    for priority, rows, sty, centre in sections:
        if priority == 5:  # free rows above the prompt, in the result's colour
            out.extend(_fit("", width, style) for _ in range(filler))
            prompt_row = len(out) if rows else -1
        out.extend(_fit(row, width, sty, centre=centre) for row in rows)
    return out, prompt_row


class GateScreen:
    """The terminal side: the alternate screen while the gate runs, one whole frame per
    scan, a redraw on resize, and on the way out (Ctrl-D, Ctrl-C, an error) the screen
    and cursor put back, the cursor at the start of a line for the summary."""

    def __init__(self, console: Console, view: View) -> None:
        self.console = console
        self.view = view
        self._size: tuple[int, int] | None = None
        self._drawing = False
        self._dirty = False
        self._old_winch: Any = None

    def __enter__(self) -> GateScreen:
        import signal

        self.console.set_alt_screen(True)
        if hasattr(signal, "SIGWINCH"):
            self._old_winch = signal.signal(signal.SIGWINCH, self._on_resize)
        self.draw()
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        from rich.control import Control

        if hasattr(signal, "SIGWINCH") and self._old_winch is not None:
            signal.signal(signal.SIGWINCH, self._old_winch)
        # clear first: a terminal without an alternate screen is left clean, cursor home
        self.console.control(Control.clear(), Control.home())
        self.console.set_alt_screen(False)
        self.console.show_cursor(True)
        sys.stdout.flush()

    def size(self) -> tuple[int, int]:
        try:
            cols, rows = os.get_terminal_size(sys.stdout.fileno())
        except (OSError, ValueError):
            cols, rows = self.console.size
        return max(cols, 1), max(rows, 1)

    def show(self, result: ScanResult, now_us: int) -> None:
        self.view.result, self.view.now_us = result, now_us
        self.draw()
        look = look_of(result, self.view.gate, now_us)
        if look.bell:
            self.console.bell()

    def _on_resize(self, _signum: int, _frame: Any) -> None:
        if self._drawing:
            self._dirty = True
            return
        with suppress(Exception):  # a resize must never end the gate; the next scan redraws
            self.draw()

    def draw(self) -> None:
        from rich.control import Control
        from rich.text import Text

        self._drawing = True
        try:
            self._dirty = True
            while self._dirty:
                self._dirty = False
                width, height = self.size()
                rows, prompt = build(self.view, width, height)
                if self._size != (width, height):  # a new size: nothing old may stay
                    self.console.control(Control.clear())
                    self._size = (width, height)
                self.console.control(Control.home())
                self.console.print(
                    Text("\n").join(rows), end="", width=width, crop=True, soft_wrap=False
                )
                if prompt >= 0:  # typing echoes there; its Enter cannot scroll the screen
                    self.console.control(Control.move_to(len(PROMPT), prompt))
                self.console.show_cursor(prompt >= 0)
                sys.stdout.flush()
        finally:
            self._drawing = False

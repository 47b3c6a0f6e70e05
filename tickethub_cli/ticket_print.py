"""Printed tickets: a 210×99 mm card (a third of A4) with the QR code on the left and, beside
it, the event, venue, local date and time, ticket type, price, holder, order and ticket ids
and the code in readable groups, for whoever checks it by eye or types it in.

One layout (`_layout`: lines placed in millimetres) is drawn by three small back ends: PDF
(fpdf2), PNG (Pillow) and SVG (text written here). Each library is imported only when a file
of its format is written: a one-shot command never pays for it.

Fonts: DejaVu Sans (shipped in `fonts/`, Bitstream Vera licence) is embedded in PDFs and
drawn into PNGs, so Latin, Greek, Cyrillic and many symbols print as typed. A character it
has no glyph for (CJK, emoji) is printed as its plain letter when it has one (NFKD), else
as "?": a name never breaks printing and never shows an invisible box. SVG keeps every
character (the viewer's own fonts draw it), XML-escaped.

Stored text goes through `render.safe_text` first: a control character prints as a
visible escape such as `\\x1b`, never as itself.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from . import clock, codes, money, qr, tickets
from .db import snapshot
from .errors import invalid, ref
from .render import safe_text

if TYPE_CHECKING:
    from .session import Session

FORMATS = qr.FORMATS  # png, svg, pdf: the writer refuses anything else
DEFAULT_FORMAT = "png"

WIDTH, HEIGHT = 210.0, 99.0  # mm
MARGIN = 8.0
QR_SIZE = HEIGHT - 2 * MARGIN  # the QR (quiet zone included) fills the card's height
TEXT_X = MARGIN + QR_SIZE + 4.0
TEXT_W = WIDTH - TEXT_X - MARGIN
PT = 25.4 / 72  # mm per point
PNG_PX_PER_MM = 10  # 254 dpi: sharp on any office printer

_FONT_DIR = os.path.join(os.path.dirname(__file__), "fonts")
FONTS = {
    "regular": "DejaVuSans.ttf",
    "bold": "DejaVuSans-Bold.ttf",
    "mono": "DejaVuSansMono-Bold.ttf",
}
_SVG_FAMILY = {
    "regular": ("DejaVu Sans, Verdana, Arial, sans-serif", "normal"),
    "bold": ("DejaVu Sans, Verdana, Arial, sans-serif", "bold"),
    "mono": ("DejaVu Sans Mono, Consolas, Menlo, monospace", "bold"),
}
_PDF_FONT = {
    "regular": ("DejaVuSans", ""),
    "bold": ("DejaVuSans", "B"),
    "mono": ("DejaVuMono", "B"),
}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# XML 1.0 cannot carry these even as character references (safe_text already escapes the
# C0/C1 controls and lone surrogates).
_NOT_XML = re.compile("[\ufffe\uffff]")


@dataclass(frozen=True)
class Card:
    """Everything one printed ticket says, as plain (already safe) text."""

    ticket_id: int
    order_id: int
    code: str  # canonical: what the QR holds (pretty-printed inside it, as before)
    event: str
    venue: str
    when: str
    type_name: str
    price: str
    holder: str

    @property
    def readable_code(self) -> str:
        return codes.pretty(self.code)


@dataclass(frozen=True)
class Line:
    x: float  # mm from the left
    y: float  # baseline, mm from the top
    size: float  # points
    font: str  # a key of FONTS
    text: str
    grey: bool = False


def local_time(starts_at: str, zone: str | None) -> str:
    """The event's start in its own time zone, e.g. "Tue 24 Nov 2026, 20:00 CET". English
    names whatever the locale (strftime's would change with it); an unknown zone name falls
    back to UTC, labelled so, never to a wrong local time."""
    from zoneinfo import ZoneInfo

    dt = clock.parse(starts_at)
    try:
        local = dt.astimezone(ZoneInfo(zone or "UTC"))
        label = local.tzname() or zone or "UTC"
    except (ValueError, OSError, LookupError):  # ZoneInfoNotFoundError is a KeyError
        local, label = dt, "UTC"
    except OverflowError:  # year 9999 at UTC+14, year 1 west of Greenwich: no local date
        local, label = dt, "UTC"
    return (
        f"{_WEEKDAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year},"
        f" {local.hour:02d}:{local.minute:02d} {label}"
    )


def card(row: dict[str, Any]) -> Card:
    """A Card from one `tickets.for_print` row."""
    event = row["event"]
    holder = row["buyer"] or row["email"] or "—"
    price = f"{money.format_amount(row['price_minor'], row['currency'])} {row['currency']}"
    return Card(
        ticket_id=int(row["id"]),
        order_id=int(row["order_id"]),
        code=codes.canonical(row["code"]),
        event=safe_text(event["name"]),
        venue=safe_text(event.get("venue") or ""),
        when=local_time(event["starts_at"], event.get("timezone") or "UTC"),
        type_name=safe_text(row["type_name"]),
        price=price,
        holder=safe_text(holder),
    )


def load(s: Session, order_id: int) -> list[Card]:
    """The cards of an order's valid tickets, read in one snapshot."""
    with snapshot(s.conn) as c:
        rows = tickets.for_print(c, order_id)
    return [card(r) for r in rows]


def check_format(fmt: str, field: str = "format") -> str:
    """A printable format (png, svg, pdf); `field` names the input that gave it."""
    chosen = fmt.strip().lower() if isinstance(fmt, str) else fmt  # PDF, Png: as meant
    if chosen not in FORMATS:
        raise invalid(f"{ref(field)} must be one of {', '.join(FORMATS)}", field=field)
    return chosen


def export(cards: list[Card], directory: str, *, fmt: str = DEFAULT_FORMAT) -> list[str]:
    """One file per ticket, `ticket-ID.FMT`, written by the one private writer (qr.write)."""
    fmt = check_format(fmt)
    qr.ready_dir(directory)
    return [qr.write(draw(c, fmt), directory, fmt=fmt, ticket_id=c.ticket_id) for c in cards]


def draw(c: Card, fmt: str) -> bytes:
    """The file's bytes for one ticket."""
    return {"pdf": _pdf, "png": _png, "svg": _svg}[check_format(fmt)](c)


# --- layout ------------------------------------------------------------------------------


@cache
def _font_path(font: str) -> str:
    return os.path.join(_FONT_DIR, FONTS[font])


@cache
def _cmap(font: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(_font_path(font), lazy=True) as f:
        return frozenset(f.getBestCmap())


@cache
def _measure_font(font: str) -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(_font_path(font), size=1000)


def _width(text: str, font: str, size: float) -> float:
    """Width in mm of `text` at `size` points."""
    return _measure_font(font).getlength(text) / 1000 * size * PT


def drawable(text: str, font: str) -> str:
    """`text` with every character the font cannot draw replaced: by its plain letters
    (NFKD: "ǅ" → "Dž") when the font has them, else by "?"."""
    have = _cmap(font)
    if all(ord(ch) in have for ch in text):
        return text
    out = []
    for ch in text:
        if ord(ch) in have:
            out.append(ch)
            continue
        plain = "".join(
            p
            for p in unicodedata.normalize("NFKD", ch)
            if ord(p) in have and not unicodedata.combining(p)
        )
        out.append(plain or "?")
    return "".join(out)


def _wrap(text: str, font: str, size: float, width: float, most: int, keep: str = "") -> list[str]:
    """`text + keep` word-wrapped to `width` mm in at most `most` lines. When it does not
    fit, `text` is cut with "…" and `keep` (a price, say) still ends the last line whole;
    without `keep`, the last line is cut with "…"."""
    lines = _lines(text + keep, font, size, width)
    if len(lines) <= most:
        return lines or [""]
    if not keep:
        lines = lines[:most]
        lines[-1] = _ellipsis(lines[-1], font, size, width)
        return lines
    low, high = 0, len(text)  # the longest head of `text` that leaves room for `keep`
    while low < high:
        mid = (low + high + 1) // 2
        if len(_lines(text[:mid].rstrip() + "…" + keep, font, size, width)) <= most:
            low = mid
        else:
            high = mid - 1
    return _lines(text[:low].rstrip() + "…" + keep, font, size, width)[:most]


def _lines(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy word wrap to `width` mm. A word longer than a whole line is broken between
    characters, starting on the current line ("Holder: a-very-long@address…" keeps the
    address beside its label instead of leaving the label alone on its line)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if _width(candidate, font, size) <= width:
            current = candidate
            continue
        if _width(word, font, size) > width:
            current = candidate
        else:
            if current:
                lines.append(current)
            current = word
        while _width(current, font, size) > width and len(current) > 1:
            cut = _fit(current, font, size, width)
            lines.append(current[:cut].rstrip())
            current = current[cut:].lstrip()
    if current:
        lines.append(current)
    return lines


def _fit(text: str, font: str, size: float, width: float, suffix: str = "") -> int:
    """How many leading characters of `text` (plus `suffix`) fit in `width` mm (at least 1).
    A binary search: a 200-character word measured one length at a time cost 0.1 s a card."""
    low, high = 1, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if _width(text[:mid] + suffix, font, size) <= width:
            low = mid
        else:
            high = mid - 1
    return low


def _ellipsis(text: str, font: str, size: float, width: float) -> str:
    return text[: _fit(text, font, size, width, "…")].rstrip() + "…"


def _layout(c: Card, *, replace: bool) -> list[Line]:
    """The text lines of a card, placed. `replace`: only characters the font can draw (PDF
    and PNG embed the font; an SVG viewer brings its own)."""
    spec: list[tuple[str, str, str, float, int, bool, float]] = [
        # text, kept whole after it, font, size pt, most lines, grey, space before (mm)
        (c.event, "", "bold", 17, 2, False, 0),
        (c.venue, "", "regular", 11.5, 2, False, 1.0),
        (c.when, "", "bold", 13, 1, False, 2.5),
        (c.type_name, f" · {c.price}", "regular", 12, 2, False, 2.5),
        (f"Holder: {c.holder}", "", "regular", 11, 1, False, 1.0),
        (f"Order {c.order_id} · Ticket {c.ticket_id}", "", "regular", 9, 1, True, 1.0),
        (c.readable_code, "", "mono", 13, 1, False, 4.0),
        ("Show this code or the QR at the door: it admits once.", "", "regular", 7.5, 1, True, 1),
    ]
    lines: list[Line] = []
    y = MARGIN + 2.0
    for text, keep, font, size, most, grey, before in spec:
        if not text:
            continue
        shown = drawable(text, font) if replace else text
        kept = drawable(keep, font) if replace else keep
        y += before
        for part in _wrap(shown, font, size, TEXT_W, most, kept):
            y += size * PT * 1.2
            lines.append(Line(TEXT_X, y, size, font, part, grey))
    # centred on the card's height, beside the QR: as much space above as below
    top, bottom = MARGIN + 2.0, y + 0.3 * lines[-1].size * PT
    shift = max(0.0, (HEIGHT - bottom - top) / 2)
    return [Line(ln.x, ln.y + shift, ln.size, ln.font, ln.text, ln.grey) for ln in lines]


def _qr_runs(c: Card) -> tuple[int, list[tuple[int, int, int]]]:
    """The QR (segno, as on screen) as its side in modules (quiet zone included) and runs
    of dark modules (row, first column, length): every back end draws these rectangles."""
    matrix = [list(row) for row in qr.make(c.code).matrix_iter(scale=1, border=4)]
    runs = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                runs.append((y, start, x - start))
            else:
                x += 1
    return len(matrix), runs


# --- back ends ---------------------------------------------------------------------------


def _pdf(c: Card) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(unit="mm", format=(WIDTH, HEIGHT))
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    pdf.set_title(f"Ticket {c.ticket_id}")  # never the code: metadata is easily shared
    pdf.set_creator("TicketHub")
    pdf.add_page()
    for key, (family, style) in _PDF_FONT.items():
        pdf.add_font(family, style, _font_path(key))
    side, runs = _qr_runs(c)
    module = QR_SIZE / side
    pdf.set_fill_color(0)
    for y, x, n in runs:
        pdf.rect(MARGIN + x * module, MARGIN + y * module, n * module, module, style="F")
    pdf.set_draw_color(160)
    pdf.set_line_width(0.2)
    pdf.rect(2, 2, WIDTH - 4, HEIGHT - 4, round_corners=True, corner_radius=3)
    for line in _layout(c, replace=True):
        pdf.set_font(*_PDF_FONT[line.font], size=line.size)
        pdf.set_text_color(90 if line.grey else 0)
        pdf.text(line.x, line.y, line.text)
    return bytes(pdf.output())


def _png(c: Card) -> bytes:
    import io

    from PIL import Image, ImageDraw, ImageFont

    px = PNG_PX_PER_MM
    image = Image.new("L", (round(WIDTH * px), round(HEIGHT * px)), 255)
    pen = ImageDraw.Draw(image)
    side, runs = _qr_runs(c)
    module = int(QR_SIZE * px) // side  # whole pixels: sharp edges for the scanner
    left = round(MARGIN * px) + (round(QR_SIZE * px) - module * side) // 2
    top = round(MARGIN * px) + (round(QR_SIZE * px) - module * side) // 2
    for y, x, n in runs:
        x0, y0 = left + x * module, top + y * module
        pen.rectangle((x0, y0, x0 + n * module - 1, y0 + module - 1), fill=0)
    pen.rounded_rectangle(
        (2 * px, 2 * px, (WIDTH - 2) * px, (HEIGHT - 2) * px), radius=3 * px, outline=160, width=2
    )
    fonts: dict[tuple[str, float], Any] = {}
    for line in _layout(c, replace=True):
        key = (line.font, line.size)
        if key not in fonts:
            fonts[key] = ImageFont.truetype(_font_path(line.font), size=line.size * PT * px)
        pen.text(
            (line.x * px, line.y * px),
            line.text,
            font=fonts[key],
            fill=90 if line.grey else 0,
            anchor="ls",  # x, y name the left end of the baseline, as in PDF and SVG
        )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _xml(text: str) -> str:
    """Text for an SVG element or attribute: markup characters and quotes escaped."""
    from xml.sax.saxutils import escape

    text = _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return escape(text, {'"': "&quot;", "'": "&apos;"})


def _svg(c: Card) -> bytes:
    side, runs = _qr_runs(c)
    module = QR_SIZE / side
    path = "".join(
        f"M{MARGIN + x * module:.3f} {MARGIN + y * module:.3f}h{n * module:.3f}v{module:.3f}"
        f"h{-n * module:.3f}z"
        for y, x, n in runs
    )
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:g}mm" height="{HEIGHT:g}mm"'
        f' viewBox="0 0 {WIDTH:g} {HEIGHT:g}">',
        f"<title>Ticket {c.ticket_id}</title>",
        f'<rect width="{WIDTH:g}" height="{HEIGHT:g}" fill="#fff"/>',
        f'<rect x="2" y="2" width="{WIDTH - 4:g}" height="{HEIGHT - 4:g}" rx="3"'
        ' fill="none" stroke="#a0a0a0" stroke-width="0.2"/>',
        f'<path fill="#000" shape-rendering="crispEdges" d="{path}"/>',
    ]
    for line in _layout(c, replace=False):
        family, weight = _SVG_FAMILY[line.font]
        parts.append(
            f'<text x="{line.x:.2f}" y="{line.y:.2f}" font-family="{family}"'
            f' font-weight="{weight}" font-size="{line.size * PT:.3f}"'
            f' fill="{"#5a5a5a" if line.grey else "#000"}" xml:space="preserve">'
            f"{_xml(line.text)}</text>"
        )
    parts.append("</svg>")
    return ("\n".join(parts) + "\n").encode("utf-8")
